//! The process-wide wasmtime engine: configuration, fingerprint, the epoch
//! ticker, compilation and loading of artifacts.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::LoadedComponent;
use crate::fair::CpuShare;
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
/// captures the ones that shape compiled code (the memory bound); the others
/// only size this process's pools and budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Largest linear memory any instance may have: the environment's bound.
    pub max_memory_bytes: u64,
    /// How many instances may exist at once (requests in flight, including
    /// app-to-app calls). Further requests wait for a slot, briefly.
    pub max_instances: u32,
    /// Most instances of one app at once, unless its manifest narrows it
    /// (`[limits] concurrency`); beyond it the app's requests get 503.
    pub app_concurrency: u32,
    /// Most guests of one app (with the app-to-app calls its requests
    /// cause) that compete for the CPU at once; the others wait for a turn
    /// without being scheduled (see `fair`). Default: the executor's worker
    /// threads.
    pub app_cpu_slots: u32,
    /// Bound on the sum of the memory caps of the instances alive at once.
    /// An instance reserves its cap before it starts; one app may hold at
    /// most half of the budget (or one instance's cap if that is more).
    pub memory_budget_bytes: u64,
    /// How long a request may take to deliver its whole body. The body is
    /// read before an instance is taken, so a slow client holds no instance;
    /// past this the client gets 408.
    pub body_read_timeout: Duration,
    /// Bound on the request-body bytes buffered at once (all requests);
    /// beyond it requests with a body get 503.
    pub body_buffer_bytes: u64,
}

/// Default of [`RuntimeConfig::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`RuntimeConfig::body_buffer_bytes`].
pub const DEFAULT_BODY_BUFFER_BYTES: u64 = 256 << 20;

impl RuntimeConfig {
    /// The given bounds with every other setting at its default.
    pub fn new(max_memory_bytes: u64, max_instances: u32) -> RuntimeConfig {
        RuntimeConfig {
            max_memory_bytes,
            max_instances,
            app_concurrency: default_app_concurrency(max_instances),
            app_cpu_slots: default_app_cpu_slots(),
            memory_budget_bytes: default_memory_budget_bytes().max(max_memory_bytes),
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            body_buffer_bytes: DEFAULT_BODY_BUFFER_BYTES,
        }
    }

    /// Checks that every request can be served at all; messages name the flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_instances == 0 {
            return Err("--max-instances must be greater than 0".into());
        }
        if self.app_concurrency == 0 {
            return Err("--app-concurrency must be greater than 0".into());
        }
        if self.app_cpu_slots == 0 {
            return Err("--app-cpu-slots must be greater than 0".into());
        }
        if self.memory_budget_bytes < self.max_memory_bytes {
            return Err(format!(
                "--memory-budget-mib {} is smaller than the per-instance memory cap --memory-mib {}: \
                 no instance could start; raise the budget or lower the cap",
                self.memory_budget_bytes >> 20,
                self.max_memory_bytes >> 20
            ));
        }
        if self.body_read_timeout.is_zero() {
            return Err("--body-read-timeout-ms must be greater than 0".into());
        }
        if self.body_buffer_bytes == 0 {
            return Err("--body-buffer-mib must be greater than 0".into());
        }
        Ok(())
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig::new(128 << 20, 1000)
    }
}

/// Default per-app concurrency: half of the instance pool, at least 1.
pub fn default_app_concurrency(max_instances: u32) -> u32 {
    (max_instances / 2).max(1)
}

/// Default per-app CPU slots: the worker threads of the tokio runtime this
/// is called on (what can run guests at once), else the machine's cores.
pub fn default_app_cpu_slots() -> u32 {
    let workers = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.metrics().num_workers(),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    u32::try_from(workers).unwrap_or(u32::MAX).max(1)
}

/// Default memory budget: half of the machine's memory (`MemTotal` of
/// `/proc/meminfo`), or 4 GiB where that cannot be read.
pub fn default_memory_budget_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_bytes(&text))
        .map_or(4 << 30, |total| total / 2)
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => value.checked_mul(1024),
        _ => None,
    }
}

/// Mebibytes that `bytes` occupies, rounded up (the unit of memory budgets).
pub(crate) fn mib_ceil(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX)
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
    /// The environment's memory budget, in MiB of instance caps.
    pub(crate) memory: Arc<Semaphore>,
    /// Request-body bytes that may be buffered at once.
    pub(crate) body_buffer: Arc<Semaphore>,
    /// Per-app admission state, by app name.
    apps: Mutex<HashMap<Arc<str>, Arc<AppGate>>>,
    pub(crate) config: RuntimeConfig,
    fingerprint: String,
    /// Set once guests must stop (shutdown deadline, or the runtime is
    /// gone): every guest traps at its next epoch tick.
    pub(crate) interrupted: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Guests that outlive the runtime (their tasks hold the engine) stop
        // at the next tick; the ticker runs as long as any of them exists.
        self.interrupted.store(true, Ordering::Relaxed);
    }
}

/// Admission state of one app: instances in flight (its concurrency limit),
/// its share of the memory budget, and its run slots (CPU fairness, as the
/// tenant of its requests and the app-to-app calls they cause).
pub(crate) struct AppGate {
    in_flight: AtomicU32,
    pub(crate) memory: Arc<Semaphore>,
    pub(crate) memory_share_mib: u32,
    pub(crate) cpu: Arc<CpuShare>,
}

/// What a runtime's instances hold at one moment ([`Runtime::usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeUsage {
    pub memory_budget_bytes: u64,
    /// Memory reserved by the caps of the instances running now.
    pub memory_reserved_bytes: u64,
    /// Instance slots in use.
    pub instances: u64,
    pub max_instances: u64,
    pub apps: Vec<AppUsage>,
}

/// One app's part of [`RuntimeUsage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppUsage {
    pub app: String,
    pub memory_reserved_bytes: u64,
    pub instances: u32,
}

/// One instance of an app counted against its concurrency limit, until dropped.
pub(crate) struct AppTicket {
    gate: Arc<AppGate>,
}

impl Drop for AppTicket {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AppGate {
    /// Counts one more instance, unless `limit` are already in flight.
    pub(crate) fn enter(self: &Arc<Self>, limit: u32) -> Option<AppTicket> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| AppTicket { gate: self.clone() })
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        config.validate().map_err(anyhow::Error::msg)?;
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

        spawn_epoch_ticker(engine.weak());

        let budget_mib = mib_ceil(config.memory_budget_bytes).min(MAX_PERMITS_U32);
        let buffer = usize::try_from(config.body_buffer_bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                slots: Arc::new(Semaphore::new(instances as usize)),
                memory: Arc::new(Semaphore::new(budget_mib as usize)),
                body_buffer: Arc::new(Semaphore::new(buffer)),
                apps: Mutex::new(HashMap::new()),
                config,
                fingerprint,
                interrupted: Arc::new(AtomicBool::new(false)),
            }),
        })
    }

    /// Stops every guest still running, at its next epoch tick (10 ms): for
    /// the shutdown deadline. Requests started afterwards fail the same way.
    pub fn interrupt_guests(&self) {
        self.inner.interrupted.store(true, Ordering::Relaxed);
    }

    /// The admission state of `app` (created on its first request).
    pub(crate) fn app_gate(&self, app: &Arc<str>) -> Arc<AppGate> {
        let mut apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.entry(app.clone())
            .or_insert_with(|| {
                let budget = mib_ceil(self.inner.config.memory_budget_bytes);
                let cap = mib_ceil(self.inner.config.max_memory_bytes);
                let share = (budget / 2).max(cap).min(budget).min(MAX_PERMITS_U32);
                Arc::new(AppGate {
                    in_flight: AtomicU32::new(0),
                    memory: Arc::new(Semaphore::new(share as usize)),
                    memory_share_mib: share,
                    cpu: Arc::new(CpuShare::new(self.inner.config.app_cpu_slots)),
                })
            })
            .clone()
    }

    /// What instances hold now, for metrics: the memory reserved by
    /// instance caps (bytes) out of the budget, and the instance slots in use
    /// out of `max_instances`; per app (apps that had a request since
    /// start), its reserved memory and instances in flight.
    pub fn usage(&self) -> RuntimeUsage {
        let config = self.inner.config;
        let budget_mib = u64::from(mib_ceil(config.memory_budget_bytes).min(MAX_PERMITS_U32));
        let free_mib = self.inner.memory.available_permits() as u64;
        let slots = u64::from(config.max_instances);
        let free_slots = self.inner.slots.available_permits() as u64;
        let apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        let mut per_app: Vec<AppUsage> = apps
            .iter()
            .map(|(name, gate)| AppUsage {
                app: name.to_string(),
                memory_reserved_bytes: u64::from(gate.memory_share_mib)
                    .saturating_sub(gate.memory.available_permits() as u64)
                    << 20,
                instances: gate.in_flight.load(Ordering::Relaxed),
            })
            .collect();
        per_app.sort_by(|a, b| a.app.cmp(&b.app));
        RuntimeUsage {
            memory_budget_bytes: budget_mib << 20,
            memory_reserved_bytes: budget_mib.saturating_sub(free_mib) << 20,
            instances: slots.saturating_sub(free_slots),
            max_instances: slots,
            apps: per_app,
        }
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

/// Semaphores count in `u32` chunks; budgets beyond this many MiB are
/// effectively unbounded anyway.
const MAX_PERMITS_U32: u32 = u32::MAX >> 3;

/// One thread advances the epoch of the engine for as long as the engine
/// lives: every store holds the engine, so the ticker outlives every guest
/// (a guest that computes is only ever interrupted at a tick).
fn spawn_epoch_ticker(engine: wasmtime::EngineWeak) {
    std::thread::Builder::new()
        .name("runway-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("failed to spawn the epoch ticker thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_memory_budget_is_read_from_meminfo() {
        let meminfo = "MemTotal:       24683736 kB\nMemFree:        19740180 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24683736 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots\n"), None);
        assert_eq!(mib_ceil(1), 1);
        assert_eq!(mib_ceil(128 << 20), 128);
        assert_eq!(mib_ceil((128 << 20) + 1), 129);
    }

    #[test]
    fn settings_that_could_serve_nothing_are_refused_naming_the_flag() {
        let config = RuntimeConfig::new(128 << 20, 10);
        assert_eq!(config.app_concurrency, 5);
        assert!(config.memory_budget_bytes >= 128 << 20);
        config.validate().unwrap();
        assert_eq!(RuntimeConfig::new(128 << 20, 1).app_concurrency, 1);
        assert!(config.app_cpu_slots >= 1);

        let mut small = config;
        small.memory_budget_bytes = 64 << 20;
        let error = small.validate().unwrap_err();
        assert!(error.contains("--memory-budget-mib 64"), "{error}");
        assert!(error.contains("--memory-mib 128"), "{error}");
        let mut zero = config;
        zero.app_concurrency = 0;
        assert!(zero.validate().unwrap_err().contains("--app-concurrency"));
        let mut zero = config;
        zero.app_cpu_slots = 0;
        assert!(zero.validate().unwrap_err().contains("--app-cpu-slots"));
        let mut zero = config;
        zero.body_read_timeout = Duration::ZERO;
        assert!(
            zero.validate()
                .unwrap_err()
                .contains("--body-read-timeout-ms")
        );
    }
}
