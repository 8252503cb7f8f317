//! The deployment service of a front-end: fetch → verify → load → stage, then
//! an atomic switch on commit.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use runway_api::fleet::{AppAssignment, RoutingTable, StageError, StageReport};
use runway_manifest::{AllowedOrigin, AppName, Digest, Package};
use runway_runtime::{
    AppLimits, InternalRouter, JobQueue, KeyValue, LoadedComponent, OutboundPolicy, Runtime,
};
use runway_store::{BlobKind, BlobStore, LogSink, Store, plain_bytes};

use crate::FrontendConfig;
use crate::events::{StoreJobs, StoreKv};

/// Where a front-end gets packages and artifacts it does not have yet. The
/// bytes are verified by the caller; a source need not be trusted.
#[async_trait]
pub trait ArtifactSource: Send + Sync {
    async fn fetch(&self, kind: BlobKind, digest: &Digest) -> Result<Vec<u8>, String>;
}

/// Reads the controller's blob store (its data directory): the source of a
/// front-end living next to its controller.
pub struct DirSource {
    blobs: BlobStore,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> DirSource {
        DirSource {
            blobs: BlobStore::new(root),
        }
    }
}

#[async_trait]
impl ArtifactSource for DirSource {
    async fn fetch(&self, kind: BlobKind, digest: &Digest) -> Result<Vec<u8>, String> {
        self.blobs
            .read(kind, digest)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Everything served at one generation.
pub(crate) struct Routes {
    pub(crate) generation: i64,
    pub(crate) apps: HashMap<String, Arc<RunningApp>>,
    /// Running apps that could not be loaded (app → why): answered with 503.
    pub(crate) failed: BTreeMap<String, String>,
}

/// One app as served: immutable for the life of its routing table.
#[derive(Clone)]
pub(crate) struct RunningApp {
    pub(crate) name: AppName,
    pub(crate) version: Arc<str>,
    pub(crate) package: Arc<Package>,
    pub(crate) component: LoadedComponent,
    pub(crate) artifact: Digest,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) limits: AppLimits,
    pub(crate) outbound: Arc<OutboundPolicy>,
    pub(crate) kv: Arc<dyn KeyValue>,
    pub(crate) jobs: Arc<dyn JobQueue>,
    pub(crate) outbox: Arc<dyn runway_runtime::Outbox>,
}

pub(crate) struct Inner {
    pub(crate) config: FrontendConfig,
    pub(crate) runtime: Runtime,
    pub(crate) store: Store,
    pub(crate) log: LogSink,
    /// The series at `/_runway/metrics`.
    pub(crate) metrics: Arc<crate::metrics::FrontendMetrics>,
    /// Verified copies of packages and artifacts, never fetched twice.
    cache: BlobStore,
    source: Arc<dyn ArtifactSource>,
    pub(crate) routes: ArcSwap<Routes>,
    staged: Mutex<Option<Arc<Routes>>>,
    components: Mutex<HashMap<Digest, LoadedComponent>>,
    packages: Mutex<HashMap<Digest, Arc<Package>>>,
    ready: AtomicBool,
    /// The highest generation the controller said is committed. Serving an
    /// older one makes this front-end not ready.
    committed: AtomicI64,
    /// For app-to-app calls, which re-enter this front-end.
    pub(crate) this: Weak<Inner>,
    /// App-to-app calls to other zones (this front-end's zone, the client).
    pub(crate) internal: ArcSwap<crate::internal::InternalCalls>,
}

impl Inner {
    pub(crate) fn new(
        config: FrontendConfig,
        runtime: Runtime,
        store: Store,
        source: Arc<dyn ArtifactSource>,
    ) -> Result<Arc<Inner>, StageError> {
        let cache = BlobStore::create(&config.cache_dir).map_err(|e| StageError::Io {
            frontend: config.name.clone(),
            reason: format!("cannot create cache directory {e}"),
        })?;
        let log = store.log_sink();
        let metrics = Arc::new(crate::metrics::FrontendMetrics::new(
            &config.name,
            runtime.clone(),
            log.clone(),
        ));
        Ok(Arc::new_cyclic(|this| Inner {
            metrics,
            config,
            runtime,
            store,
            log,
            cache,
            source,
            routes: ArcSwap::from_pointee(Routes {
                generation: 0,
                apps: HashMap::new(),
                failed: BTreeMap::new(),
            }),
            staged: Mutex::new(None),
            components: Mutex::new(HashMap::new()),
            packages: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
            committed: AtomicI64::new(0),
            this: this.clone(),
            internal: ArcSwap::from_pointee(
                crate::internal::InternalCalls::new(runway_store::GLOBAL_ZONE, None)
                    .expect("an HTTP client without a CA bundle always builds"),
            ),
        }))
    }

    /// The generation served, and whether it is ready: it has committed a
    /// table, and none older than the committed generation it knows of.
    pub(crate) fn status(&self) -> (i64, bool) {
        let generation = self.routes.load().generation;
        let ready = runway_api::readiness::serves_committed(
            self.ready.load(Ordering::Acquire),
            generation,
            self.committed.load(Ordering::Acquire),
        );
        (generation, ready)
    }

    /// Learns that `generation` is committed in the environment.
    pub(crate) fn note_committed(&self, generation: i64) {
        self.committed.fetch_max(generation, Ordering::AcqRel);
    }

    /// Stages a table for a deployment: every app must load, or nothing is
    /// staged (the controller then aborts the deployment).
    pub(crate) async fn stage(&self, table: &RoutingTable) -> Result<StageReport, StageError> {
        let staged = self.stage_apps(table, false).await;
        self.metrics
            .stages
            .get_or_create(&crate::metrics::FrontendMetrics::outcome(staged.is_ok()))
            .inc();
        staged.map(|(report, _)| report)
    }

    /// Stages the committed table when catching up. The decision is already
    /// taken, so an app that cannot be loaded here (its package or artifact
    /// fails to decode, verify or load) does not keep the others from
    /// serving: it is staged as failed, like the controller's
    /// `RoutingTable.failed` (503 `app_failed` until a later table), and
    /// returned with why. An app that cannot be fetched (the controller is
    /// unreachable) still fails the whole catch-up, which is retried.
    pub(crate) async fn stage_committed(
        &self,
        table: &RoutingTable,
    ) -> Result<(StageReport, BTreeMap<String, String>), StageError> {
        self.stage_apps(table, true).await
    }

    async fn stage_apps(
        &self,
        table: &RoutingTable,
        isolate_failures: bool,
    ) -> Result<(StageReport, BTreeMap<String, String>), StageError> {
        let started = Instant::now();
        let mut fetched_bytes = 0;
        let mut apps = HashMap::new();
        let mut failed_here = BTreeMap::new();
        for assignment in &table.apps {
            match self.prepare(table, assignment).await {
                Ok((app, bytes)) => {
                    fetched_bytes += bytes;
                    apps.insert(assignment.app.clone(), Arc::new(app));
                }
                Err(error @ (StageError::Load { .. } | StageError::Digest { .. }))
                    if isolate_failures =>
                {
                    failed_here.insert(assignment.app.clone(), error.to_string());
                }
                Err(error) => return Err(error),
            }
        }
        let loaded_apps = apps.len() as u32;
        let mut failed = table.failed.clone();
        failed.extend(failed_here.clone());
        {
            // A table older than one staged or served meanwhile (a catch-up
            // racing a deployment) is dropped, never staged over a newer one.
            let mut staged = self.staged.lock().expect("staged lock poisoned");
            let newest = staged
                .as_ref()
                .map_or(0, |r| r.generation)
                .max(self.routes.load().generation);
            if table.generation < newest {
                return Err(StageError::Stale {
                    frontend: self.config.name.clone(),
                    generation: table.generation,
                    newest,
                });
            }
            *staged = Some(Arc::new(Routes {
                generation: table.generation,
                apps,
                failed,
            }));
        }
        let report = StageReport {
            frontend: self.config.name.clone(),
            generation: table.generation,
            fetched_bytes,
            loaded_apps,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        Ok((report, failed_here))
    }

    pub(crate) fn commit(&self, generation: i64) -> Result<(), StageError> {
        let mut staged = self.staged.lock().expect("staged lock poisoned");
        let routes = match staged.take() {
            Some(routes) if routes.generation == generation => routes,
            other => {
                let description = match &other {
                    Some(routes) => format!("generation {}", routes.generation),
                    None => "nothing".into(),
                };
                *staged = other;
                return Err(StageError::NotStaged {
                    frontend: self.config.name.clone(),
                    generation,
                    staged: description,
                });
            }
        };
        // Keep only what the new table uses: old instances in flight hold
        // their own references and finish on the old version.
        let artifacts: Vec<Digest> = routes.apps.values().map(|a| a.artifact).collect();
        let packages: Vec<Digest> = routes.apps.values().map(|a| a.package.digest).collect();
        self.note_committed(routes.generation);
        self.routes.store(routes);
        self.components
            .lock()
            .expect("components lock poisoned")
            .retain(|digest, _| artifacts.contains(digest));
        self.packages
            .lock()
            .expect("packages lock poisoned")
            .retain(|digest, _| packages.contains(digest));
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    pub(crate) fn abort(&self, generation: i64) {
        let mut staged = self.staged.lock().expect("staged lock poisoned");
        if staged
            .as_ref()
            .is_some_and(|routes| routes.generation == generation)
        {
            *staged = None;
        }
    }

    /// Fetches, verifies and loads one app of a table. Returns the bytes fetched.
    async fn prepare(
        &self,
        table: &RoutingTable,
        assignment: &AppAssignment,
    ) -> Result<(RunningApp, u64), StageError> {
        let app = &assignment.app;
        let load_error = |reason: String| StageError::Load {
            app: app.clone(),
            reason,
        };
        let name = AppName::parse(app).map_err(|e| load_error(e.to_string()))?;
        let package_digest = Digest::parse(&assignment.package_digest)
            .map_err(|e| load_error(format!("bad package digest: {e}")))?;
        let artifact_digest = Digest::parse(&assignment.artifact_digest)
            .map_err(|e| load_error(format!("bad artifact digest: {e}")))?;

        let mut fetched = 0;
        let cached_package = self
            .packages
            .lock()
            .expect("packages lock poisoned")
            .get(&package_digest)
            .cloned();
        let package = match cached_package {
            Some(package) => package,
            None => {
                let max = self.config.max_package_bytes;
                // A package's digest is that of its canonical index: decoding
                // verifies every entry against it.
                let (package, n) = self
                    .fetch_verified(app, BlobKind::Package, &package_digest, move |bytes| {
                        let package =
                            Package::from_bytes(&bytes, max).map_err(|e| e.to_string())?;
                        Ok((package.digest, package))
                    })
                    .await?;
                fetched += n;
                let package = Arc::new(package);
                self.packages
                    .lock()
                    .expect("packages lock poisoned")
                    .insert(package_digest, package.clone());
                package
            }
        };

        let cached_component = self
            .components
            .lock()
            .expect("components lock poisoned")
            .get(&artifact_digest)
            .cloned();
        let component = match cached_component {
            Some(component) => component,
            None => {
                let (bytes, n) = self
                    .fetch_verified(app, BlobKind::Artifact, &artifact_digest, plain_bytes)
                    .await?;
                fetched += n;
                let runtime = self.runtime.clone();
                // SAFETY: `bytes` hash to the artifact digest the controller
                // recorded when it compiled them with this engine configuration.
                let component =
                    tokio::task::spawn_blocking(move || unsafe { runtime.load(&bytes) })
                        .await
                        .map_err(|e| load_error(e.to_string()))?
                        .map_err(|e| load_error(e.to_string()))?;
                self.components
                    .lock()
                    .expect("components lock poisoned")
                    .insert(artifact_digest, component.clone());
                component
            }
        };

        let allow = assignment
            .outbound_allow
            .iter()
            .map(|origin| {
                AllowedOrigin::parse(origin)
                    .map_err(|e| load_error(format!("outbound origin {origin}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let internal: Arc<dyn InternalRouter> = Arc::new(crate::serve::AppToApp {
            frontend: self.this.clone(),
        });
        let mut config = assignment.config.clone();
        config.insert("runway.environment".into(), table.environment.clone());
        config.insert("runway.base_url".into(), table.base_url.clone());
        config.insert("runway.app".into(), app.clone());
        config.insert("runway.version".into(), assignment.version.clone());
        let limits = AppLimits {
            timeout: Duration::from_millis(assignment.limits.timeout_ms),
            memory_bytes: assignment.limits.memory_bytes,
            max_body_bytes: assignment.limits.max_body_bytes,
            concurrency: assignment.limits.concurrency,
        };
        let kv: Arc<dyn KeyValue> = Arc::new(StoreKv::new(self.store.clone(), app));
        let jobs: Arc<dyn JobQueue> = Arc::new(StoreJobs::new(self.store.clone(), app));
        let outbox: Arc<dyn runway_runtime::Outbox> = Arc::new(crate::email::StoreOutbox::new(
            self.store.clone(),
            self.log.clone(),
            app,
            Some(table.base_url.clone()),
        ));
        let running = RunningApp {
            name,
            version: Arc::from(assignment.version.as_str()),
            package,
            component,
            artifact: artifact_digest,
            config: Arc::new(config),
            limits,
            outbound: Arc::new(OutboundPolicy {
                allow,
                internal: Some(internal),
            }),
            kv,
            jobs,
            outbox,
        };
        Ok((running, fetched))
    }

    /// Returns a content-addressed file, decoded and verified, from the
    /// local cache or the source, and how many bytes had to be fetched.
    /// `decode` returns the digest the content really has; a cached copy
    /// that does not match is discarded and fetched again.
    async fn fetch_verified<T: Send + 'static>(
        &self,
        app: &str,
        kind: BlobKind,
        digest: &Digest,
        decode: impl Fn(Vec<u8>) -> Result<(Digest, T), String> + Send + Sync + Clone + 'static,
    ) -> Result<(T, u64), StageError> {
        if self.cache.contains(kind, digest) {
            match self.cache.read_verified(kind, digest, decode.clone()).await {
                Ok(value) => return Ok((value, 0)),
                // A corrupt cache entry is replaced, never used.
                Err(_) => {
                    let _ = self.cache.remove(kind, digest).await;
                }
            }
        }
        let bytes = self
            .source
            .fetch(kind, digest)
            .await
            .map_err(|reason| StageError::Fetch {
                app: app.to_string(),
                what: kind.label(),
                digest: digest.to_string(),
                reason,
            })?;
        let n = bytes.len() as u64;
        let copy = bytes.clone();
        let (actual, value) = tokio::task::spawn_blocking(move || decode(copy))
            .await
            .map_err(|e| StageError::Load {
                app: app.to_string(),
                reason: e.to_string(),
            })?
            .map_err(|reason| StageError::Load {
                app: app.to_string(),
                reason: format!("{} {digest}: {reason}", kind.label()),
            })?;
        if actual != *digest {
            return Err(StageError::Digest {
                app: app.to_string(),
                what: kind.label(),
                digest: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        self.cache
            .write(kind, digest, bytes)
            .await
            .map_err(|e| StageError::Io {
                frontend: self.config.name.clone(),
                reason: format!(
                    "cannot write {}: {e}",
                    self.cache.path(kind, digest).display()
                ),
            })?;
        Ok((value, n))
    }
}
