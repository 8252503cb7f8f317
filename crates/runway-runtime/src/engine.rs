//! The process-wide wasmtime engine: configuration, fingerprint, the epoch
//! ticker, compilation and loading of artifacts.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::LoadedComponent;
use crate::host::{self, HostState};
use crate::validate::{self, ComponentError, ComponentReport};

/// How often the ticker advances the engine's epoch. A CPU-bound guest yields
/// to the executor at every tick and is stopped at the first tick past its
/// deadline, so this is also the precision of the timeout.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each linear memory (and at most this many) reset in place when
/// its pool slot is reused. A std-built Rust guest touches about 1 MiB.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Settings that shape compiled code or the instance pool. Two processes must
/// use equal settings to share artifacts; [`Runtime::engine_fingerprint`]
/// captures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Largest linear memory any instance may have: the environment's bound.
    pub max_memory_bytes: u64,
    /// How many instances may exist at once (requests in flight, including
    /// app-to-app calls). Further requests wait for a slot, briefly.
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_memory_bytes: 128 << 20,
            max_instances: 1000,
        }
    }
}

/// The wasm engine shared by every app in the process.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) config: RuntimeConfig,
    fingerprint: String,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let memory = usize::try_from(config.max_memory_bytes)?;
        let mut pool = PoolingAllocationConfig::default();
        let instances = config.max_instances;
        pool.total_component_instances(instances)
            // A std-built Rust component holds a few core instances (the app
            // and its adapter shims) and tables.
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .total_stacks(instances)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .max_memory_size(memory)
            // Reset a small memory with memset when its slot is reused, not
            // with madvise: every request gets a fresh instance, and an
            // madvise costs a TLB shootdown on every core plus a page fault
            // per page touched again (measured: ~20% of CPU under load).
            // Larger memories are still given back past this size.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(64 << 10);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            // Reserve no more address space per memory than the bound needs:
            // 200 apps × 1000 slots of 4 GiB reservations would be wasteful.
            .memory_reservation(config.max_memory_bytes.next_power_of_two().max(1 << 26))
            .memory_guard_size(32 << 20);
        let engine = Engine::new(&wasm)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        host::add_runway_interfaces(&mut linker)?;

        let fingerprint = {
            let mut hasher = std::hash::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            config.max_memory_bytes.hash(&mut hasher);
            format!("wasmtime-48-{:016x}", hasher.finish())
        };

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.weak(), ticker_stop.clone());

        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                slots: Arc::new(Semaphore::new(instances as usize)),
                config,
                fingerprint,
                ticker_stop,
            }),
        })
    }

    /// Identifies the engine configuration an artifact was compiled for.
    /// Artifacts are keyed by (component digest, fingerprint).
    pub fn engine_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    pub fn config(&self) -> RuntimeConfig {
        self.inner.config
    }

    /// Validates and compiles a component ahead of time. Returns the
    /// serialized artifact and what the component imports and exports.
    /// CPU-heavy: call it from a blocking thread.
    pub fn compile(&self, component: &[u8]) -> Result<(Vec<u8>, ComponentReport), ComponentError> {
        validate::check_header(component)?;
        let compiled = Component::new(&self.inner.engine, component)
            .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
        let report = validate::check_world(&self.inner.engine, &compiled)?;
        self.link(&compiled)?;
        let artifact = compiled.serialize().map_err(|e| {
            ComponentError::Invalid(format!("failed to serialize compiled code: {e:#}"))
        })?;
        Ok((artifact, report))
    }

    /// Loads an artifact produced by [`Runtime::compile`] with the same
    /// fingerprint.
    ///
    /// # Safety
    ///
    /// The bytes must be exactly an artifact this engine configuration
    /// produced: wasmtime trusts serialized code. Callers verify the
    /// artifact's digest against the catalog before calling this.
    pub unsafe fn load(&self, artifact: &[u8]) -> Result<LoadedComponent, ComponentError> {
        // SAFETY: forwarded to the caller, see above.
        let component =
            unsafe { Component::deserialize(&self.inner.engine, artifact) }.map_err(|e| {
                ComponentError::Invalid(format!("failed to load compiled artifact: {e:#}"))
            })?;
        self.link(&component)
    }

    fn link(&self, component: &Component) -> Result<LoadedComponent, ComponentError> {
        let pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| ComponentError::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|e| ComponentError::Link(format!("{e:#}")))?;
        Ok(LoadedComponent { pre })
    }
}

/// One thread advances the epoch of the engine for as long as it lives.
fn spawn_epoch_ticker(engine: wasmtime::EngineWeak, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("runway-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("failed to spawn the epoch ticker thread");
}
