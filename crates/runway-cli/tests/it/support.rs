//! Test support: builds guest apps from source and starts real environments
//! on `127.0.0.1:0` with a throwaway data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use runway_api::v1::DeploymentStatus;
use runway_cli::standalone::{Standalone, StandaloneConfig};
use runway_manifest::Package;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Builds the guest app at `rel` (relative to the repo root) for
/// wasm32-wasip2, once per test run, and returns its directory. All guests
/// share one target directory so their common dependencies compile once;
/// the component is copied to the path its runway.toml names.
pub fn guest(rel: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = built.get(rel) {
        return dir.clone();
    }
    let root = repo_root();
    let dir = root.join(rel);
    if dir.join("Cargo.toml").exists() {
        let target = root.join("target").join("guests");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip2",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&dir)
            .status()
            .expect("failed to run cargo for a guest");
        assert!(
            status.success(),
            "building guest {rel} failed (is the wasm32-wasip2 target installed?)"
        );
        let manifest = std::fs::read_to_string(dir.join("runway.toml")).expect("guest manifest");
        let manifest = runway_manifest::Manifest::parse(&manifest, "runway.toml")
            .expect("guest manifest parses");
        let component = Path::new(&manifest.component.path);
        let built_wasm = target
            .join("wasm32-wasip2/release")
            .join(component.file_name().unwrap());
        let dest = dir.join(component);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&built_wasm, &dest).expect("copy the built component");
    }
    built.insert(rel.to_string(), dir.clone());
    dir
}

/// The package of a guest, as `runway app build` would make it.
pub fn package(rel: &str) -> Package {
    Package::from_dir(&guest(rel)).expect("guest packs")
}

/// The same app with its manifest edited (e.g. another version, limits, an
/// allow-list): `edit` gets the manifest text and returns the new one.
pub fn repackage(package: &Package, edit: impl FnOnce(&str) -> String) -> Package {
    Package::from_parts(
        edit(&package.manifest_toml),
        package.component.clone(),
        package.static_files.clone(),
    )
    .expect("edited package is valid")
}

/// Replaces the `version = "…"` line of `[app]`.
pub fn with_version(manifest: &str, version: &str) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for line in manifest.lines() {
        if !replaced && line.trim_start().starts_with("version") {
            out.push_str(&format!("version = \"{version}\"\n"));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A running standalone environment with its admin token and a client.
pub struct TestEnv {
    pub env: Option<Standalone>,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    pub client: runway_client::Client,
    pub http: reqwest::Client,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut StandaloneConfig)) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            StandaloneConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
        configure(&mut config);
        let env = Standalone::start(config).await.expect("environment starts");
        let token = env
            .admin_token()
            .expect("first start creates a token")
            .to_string();
        let url = env.base_url().to_string();
        let client = runway_client::Client::new(&url, Some(token.clone())).expect("client");
        TestEnv {
            env: Some(env),
            dir,
            url,
            token,
            client,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the environment and starts it again on the same data directory.
    pub async fn restart(&mut self) {
        let env = self.env.take().expect("running");
        env.shutdown(Duration::from_secs(10))
            .await
            .expect("clean shutdown");
        let mut config = StandaloneConfig::new(self.data_dir(), "127.0.0.1:0".parse().unwrap());
        config.environment = "dev".into();
        let env = Standalone::start(config)
            .await
            .expect("environment restarts");
        assert!(
            env.admin_token().is_none(),
            "a restart must not mint a new admin token"
        );
        self.url = env.base_url().to_string();
        self.client = runway_client::Client::new(&self.url, Some(self.token.clone())).unwrap();
        self.env = Some(env);
    }

    pub async fn publish(&self, package: &Package) -> runway_api::v1::PublishResult {
        let (result, _) = self
            .client
            .publish(package.to_bytes(), true, None)
            .await
            .expect("publish succeeds");
        if let Some(d) = &result.deployment {
            assert_eq!(
                d.status,
                DeploymentStatus::Succeeded,
                "deployment failed: {:?}",
                d.error
            );
        }
        result
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request reaches the environment")
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The log rows of `app` (of one kind, or errors only), once everything
    /// logged so far is in the log catalog.
    pub async fn logs(
        &self,
        app: &str,
        kind: Option<&str>,
        errors: bool,
    ) -> Vec<runway_api::v1::LogEntry> {
        let env = self.env.as_ref().unwrap();
        env.controller().store().log_sink().flush().await;
        self.client
            .logs(&runway_api::v1::LogQueryParams {
                app: Some(app.into()),
                kind: kind.map(|k| runway_api::v1::LogKinds::parse(k).expect("a log kind")),
                errors: errors.then_some(true),
                ..Default::default()
            })
            .await
            .expect("logs query")
    }
}
