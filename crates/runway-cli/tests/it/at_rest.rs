//! Restart and data at rest: damaged artifacts are recompiled, an app that
//! cannot load fails alone, file modes, secret property values encrypted in
//! the catalog (and secret once secret).

use std::path::{Path, PathBuf};

use runway_api::v1::ConfigPatch;
use runway_cli::standalone::{Standalone, StandaloneConfig};

use crate::support::{TestEnv, package, repackage, with_version};

/// Every file under `dir` whose name contains `needle`.
fn files_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().contains(needle) {
                found.push(path);
            }
        }
    }
    found
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Whether `needle` occurs in any of the platform catalog's files (the
/// database, its WAL and shared-memory index).
fn catalog_contains(data_dir: &Path, needle: &str) -> bool {
    let catalog = data_dir.join("catalog");
    ["platform.db", "platform.db-wal", "platform.db-shm"]
        .iter()
        .filter_map(|name| std::fs::read(catalog.join(name)).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_artifact_is_recompiled_at_start() {
    let mut env = TestEnv::start().await;
    let hello = env.publish(&package("examples/hello")).await;
    let notes = env.publish(&package("examples/notes")).await;
    assert_eq!(env.get_text("/hello/").await.0, 200);
    assert_eq!(env.get_text("/notes/").await.0, 200);
    env.env
        .take()
        .unwrap()
        .shutdown(std::time::Duration::from_secs(10))
        .await
        .unwrap();

    // hello's compiled artifact is gone everywhere; notes' is garbage.
    let data = env.data_dir();
    let deleted = files_named(&data, hex_of(&hello.artifact_digest));
    assert!(!deleted.is_empty());
    for path in deleted {
        std::fs::remove_file(path).unwrap();
    }
    let corrupted = files_named(&data, hex_of(&notes.artifact_digest));
    assert!(!corrupted.is_empty());
    for path in corrupted {
        std::fs::write(path, b"not a compiled component").unwrap();
    }

    let config = StandaloneConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    let restarted = Standalone::start(config)
        .await
        .expect("the environment starts with damaged artifacts");
    env.url = restarted.base_url().to_string();
    env.env = Some(restarted);
    let (status, body) = env.get_text("/hello/").await;
    assert_eq!((status, body.as_str()), (200, "Hello from Runway!\n"));
    let (status, body) = env.get_text("/notes/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("Notes\n"), "{body}");
    // Recompiled into place, under its content address.
    let blobs = runway_store::BlobStore::new(&data);
    for digest in [&hello.artifact_digest, &notes.artifact_digest] {
        let digest = runway_manifest::Digest::parse(digest).unwrap();
        blobs
            .read_verified(
                runway_store::BlobKind::Artifact,
                &digest,
                runway_store::plain_bytes,
            )
            .await
            .expect("artifact recompiled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_cannot_load_is_reported_failed_and_the_others_serve() {
    let mut env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    let notes = env.publish(&package("examples/notes")).await;
    env.env
        .take()
        .unwrap()
        .shutdown(std::time::Duration::from_secs(10))
        .await
        .unwrap();

    // notes' artifact and its stored package are both corrupt: nothing to
    // recompile from.
    let data = env.data_dir();
    for digest in [&notes.artifact_digest, &notes.digest] {
        for path in files_named(&data, hex_of(digest)) {
            std::fs::write(path, b"garbage").unwrap();
        }
    }

    let config = StandaloneConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    let restarted = Standalone::start(config)
        .await
        .expect("one unloadable app must not stop the environment");
    env.url = restarted.base_url().to_string();
    env.client = runway_client::Client::new(&env.url, Some(env.token.clone())).unwrap();
    env.env = Some(restarted);

    let (status, body) = env.get_text("/hello/").await;
    assert_eq!((status, body.as_str()), (200, "Hello from Runway!\n"));
    let (status, body) = env.get_text("/notes/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("notes"), "{body}");

    // Reported failed in `app list` and `app show`.
    let list: serde_json::Value = env
        .http
        .get(format!("{}/_runway/api/v1/apps", env.url))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("hello")["status"], "running", "{list}");
    assert_eq!(row("notes")["status"], "failed", "{list}");
    let error = row("notes")["load_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("package"), "{error}");
    let show: serde_json::Value = env
        .http
        .get(format!("{}/_runway/api/v1/apps/notes", env.url))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(show["status"], "failed", "{show}");

    // Deploying hello again works (the failed app does not block the others),
    // and publishing notes again brings it back.
    let hello2 = repackage(&package("examples/hello"), |m| with_version(m, "0.2.0"));
    env.publish(&hello2).await;
    assert_eq!(env.get_text("/hello/").await.0, 200);
    let notes2 = repackage(&package("examples/notes"), |m| with_version(m, "0.2.0"));
    env.publish(&notes2).await;
    assert_eq!(env.get_text("/notes/").await.0, 200);
    let apps = env.client.apps().await.unwrap();
    assert!(apps.iter().all(|a| a.running_version.is_some()));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_catalog_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    let mode = |path: PathBuf| {
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = env.data_dir();
    assert_eq!(mode(data.clone()), 0o700, "data directory");
    for name in ["platform", "log", "session"] {
        for suffix in [".db", ".db-wal", ".db-shm"] {
            let path = data.join("catalog").join(format!("{name}{suffix}"));
            assert_eq!(mode(path.clone()), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode(data.join("secrets.key")), 0o600, "secrets.key");
    assert_eq!(mode(data.join("admin.token")), 0o600, "admin.token");
}

/// notes with its `title` property declared secret (or not).
fn notes_with_secret_title(version: &str, secret: bool) -> runway_manifest::Package {
    repackage(&package("examples/notes"), |m| {
        with_version(m, version).replace(
            "[properties.title]\n",
            &format!("[properties.title]\nsecret = {secret}\n"),
        )
    })
}

async fn set_title(env: &TestEnv, value: &str) -> Vec<runway_api::v1::PropertyView> {
    let mut patch = ConfigPatch::default();
    patch.values.insert("title".into(), Some(value.into()));
    env.client.set_config("notes", &patch).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_encrypted_in_the_catalog_and_need_the_key() {
    let mut env = TestEnv::start().await;
    env.publish(&notes_with_secret_title("0.1.0", true)).await;
    let secret = "Sesame-7f3a9c";
    let views = set_title(&env, secret).await;
    let title = views.iter().find(|p| p.name == "title").unwrap();
    assert!(title.secret && title.value.is_none());
    assert!(env.get_text("/notes/").await.1.starts_with(secret));
    let data = env.data_dir();
    assert!(
        !catalog_contains(&data, secret),
        "the secret is in the catalog in plaintext"
    );

    // Restarted with the key in the data directory: the app still gets it.
    env.restart().await;
    assert!(env.get_text("/notes/").await.1.starts_with(secret));
    assert!(!catalog_contains(&data, secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_secret_rows_of_an_older_catalog_are_encrypted_on_start() {
    let mut env = TestEnv::start().await;
    env.publish(&notes_with_secret_title("0.1.0", true)).await;
    set_title(&env, "placeholder").await;
    env.env
        .take()
        .unwrap()
        .shutdown(std::time::Duration::from_secs(10))
        .await
        .unwrap();

    // What a catalog written before encryption looks like: the secret in
    // plaintext, nothing marked.
    let data = env.data_dir();
    let legacy = "Legacy-plain-42e1";
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("catalog/platform.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE properties SET value = $1, key_id = NULL WHERE app = 'notes'")
            .bind(legacy)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("DELETE FROM secret_properties")
            .execute(&mut conn)
            .await
            .unwrap();
        use sqlx::Connection;
        conn.close().await.unwrap();
    }
    assert!(catalog_contains(&data, legacy));

    let config = StandaloneConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    let restarted = Standalone::start(config).await.expect("restart");
    env.url = restarted.base_url().to_string();
    env.env = Some(restarted);
    assert!(env.get_text("/notes/").await.1.starts_with(legacy));
    assert!(
        !catalog_contains(&data, legacy),
        "the plaintext secret survived the start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_once_secret_stays_secret_until_an_admin_unmarks_it() {
    let env = TestEnv::start().await;
    env.publish(&notes_with_secret_title("0.1.0", true)).await;
    let secret = "Kept-secret-91b2";
    set_title(&env, secret).await;

    // Version 2 declares it non-secret: still masked, still encrypted.
    env.publish(&notes_with_secret_title("0.2.0", false)).await;
    assert!(env.get_text("/notes/").await.1.starts_with(secret));
    for views in [
        env.client.config("notes").await.unwrap(),
        env.client.app("notes").await.unwrap().properties,
    ] {
        let title = views.iter().find(|p| p.name == "title").unwrap();
        assert!(title.secret, "{title:?}");
        assert_eq!(title.value, None);
    }
    // Setting it again keeps it encrypted.
    let again = "Kept-secret-again-5c";
    set_title(&env, again).await;
    let data = env.data_dir();
    assert!(!catalog_contains(&data, secret) && !catalog_contains(&data, again));

    // Only an admin may un-mark it.
    let deploy_token = env
        .client
        .create_token(&runway_api::v1::CreateToken {
            name: "ci".into(),
            scope: runway_api::v1::Scope::Deploy,
        })
        .await
        .unwrap()
        .token;
    let unmark = |token: &str| {
        env.http
            .post(format!(
                "{}/_runway/api/v1/apps/notes/config/title/unmark-secret",
                env.url
            ))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(unmark(&deploy_token).await.unwrap().status(), 403);
    let response = unmark(&env.token).await.unwrap();
    assert_eq!(response.status(), 200);
    let views: Vec<runway_api::v1::PropertyView> = response.json().await.unwrap();
    let title = views.iter().find(|p| p.name == "title").unwrap();
    assert_eq!((title.secret, title.value.as_deref()), (false, Some(again)));
    assert!(env.get_text("/notes/").await.1.starts_with(again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_can_be_given_as_files_instead_of_on_the_command_line() {
    let env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    let token_file = env.dir.path().join("my.token");
    std::fs::write(&token_file, format!("{}\n", env.token)).unwrap();
    let cwd = env.dir.path().to_path_buf();
    let run = move |args: Vec<String>, vars: Vec<(&'static str, String)>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_runway"));
        command
            .args(&args)
            .current_dir(&cwd)
            .env_remove("RUNWAY_TOKEN")
            .env_remove("RUNWAY_TOKEN_FILE")
            .env_remove("RUNWAY_ENV");
        for (k, v) in vars {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let url = env.url.clone();
    let file = token_file.display().to_string();

    // --token-file
    let args = vec![
        "app".to_string(),
        "list".into(),
        "--env".into(),
        url.clone(),
        "--token-file".into(),
        file.clone(),
    ];
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(args, vec![])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("hello"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // RUNWAY_TOKEN_FILE
    let args = vec![
        "app".to_string(),
        "list".into(),
        "--env".into(),
        url.clone(),
    ];
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        let file = file.clone();
        move || run(args, vec![("RUNWAY_TOKEN_FILE", file)])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A missing file is named.
    let missing = env.dir.path().join("missing.token").display().to_string();
    let args = vec![
        "app".to_string(),
        "list".into(),
        "--env".into(),
        url,
        "--token-file".into(),
        missing.clone(),
    ];
    let out = tokio::task::spawn_blocking(move || run(args, vec![]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(&missing),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_secrets_key_is_refused_by_name() {
    let mut env = TestEnv::start().await;
    env.publish(&notes_with_secret_title("0.1.0", true)).await;
    set_title(&env, "Sesame-wrong-key").await;
    let data = env.data_dir();
    // A copied catalog with another key reveals nothing and refuses to start.
    env.env
        .take()
        .unwrap()
        .shutdown(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let other_key = env.dir.path().join("other.key");
    std::fs::write(&other_key, format!("{}\n", "ab".repeat(32))).unwrap();
    let mut config = StandaloneConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    config.secrets_key_file = Some(other_key.clone());
    let error = match Standalone::start(config).await {
        Ok(_) => panic!("started with the wrong secrets key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains(&other_key.display().to_string()),
        "the error names the key file: {error}"
    );

    // The missing key, given explicitly: named too.
    let missing = env.dir.path().join("missing.key");
    let mut config = StandaloneConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    config.secrets_key_file = Some(missing.clone());
    let error = match Standalone::start(config).await {
        Ok(_) => panic!("started without its secrets key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&missing.display().to_string()), "{error}");

    // The right key still opens it.
    let mut config = StandaloneConfig::new(&data, "127.0.0.1:0".parse().unwrap());
    config.secrets_key_file = Some(data.join("secrets.key"));
    let restarted = Standalone::start(config).await.expect("the right key");
    env.url = restarted.base_url().to_string();
    env.env = Some(restarted);
    assert!(
        env.get_text("/notes/")
            .await
            .1
            .starts_with("Sesame-wrong-key")
    );
}
