//! `--env` / `--token`: how a command finds and authenticates to an environment.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use runway_client::Client;

/// Where `runway up` listens by default.
pub const DEFAULT_ENV: &str = "http://127.0.0.1:8080";

/// Files tried, in order, when neither `--token` nor `RUNWAY_TOKEN` is given.
pub const TOKEN_FILES: [&str; 2] = [".runway/admin.token", "../.runway/admin.token"];

/// Flags of every command that talks to an environment.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Environment URL, http://host:port.
    #[arg(long = "env", env = "RUNWAY_ENV", value_name = "URL", default_value = DEFAULT_ENV)]
    pub env: String,
    /// API token [default: ./.runway/admin.token or ../.runway/admin.token if present].
    #[arg(
        long,
        env = "RUNWAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File holding the API token (keeps it off the command line and out of
    /// `ps`); takes precedence over --token.
    #[arg(long, env = "RUNWAY_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

impl Connection {
    /// A client for `--env`, authenticated with the resolved token. `--env`
    /// is a URL, or the name of an environment registered on the console of
    /// `runway login` (its address is asked there once; the token is the
    /// flags', else one the console issues for that environment with the
    /// logged-in user's level there, cached: `login::env_token`).
    pub async fn client(&self) -> anyhow::Result<Client> {
        runway_server::refuse_credentials("--env (or RUNWAY_ENV)", &self.env)
            .map_err(anyhow::Error::msg)?;
        let from_file = match &self.token_file {
            Some(path) => Some(read_token_file(path, "--token-file")?),
            None => None,
        };
        let explicit = from_file
            .as_deref()
            .or(self.token.as_deref())
            .filter(|t| !t.trim().is_empty());
        // An environment named on the console, without a token of its own:
        // the console issues one for it (the logged-in user's level there)
        // and says where it is.
        let env = self.env.trim();
        if explicit.is_none() && runway_console::check_name("environment", env).is_ok() {
            let (url, token) = crate::commands::login::env_token(
                &crate::commands::login::ConsoleArgs::from_env(),
                env,
            )
            .await
            .with_context(|| {
                format!(
                    "--env {env:?} is not a URL (http://host:port), so it names an environment registered on a console"
                )
            })?;
            return Ok(Client::new(&url, Some(token))?);
        }
        let (url, name) = self.resolve_env().await?;
        let token = resolve_token_for(explicit, Path::new("."), name.as_deref())?;
        Ok(Client::new(&url, Some(token))?)
    }

    /// `--env` as a URL, and the console environment name it came from.
    async fn resolve_env(&self) -> anyhow::Result<(String, Option<String>)> {
        let env = self.env.trim();
        // A console environment name follows the console's name rules;
        // anything else is taken as a URL (and refused as one if it is not).
        if runway_console::check_name("environment", env).is_err() {
            return Ok((env.to_string(), None));
        }
        let console = crate::commands::login::ConsoleArgs::from_env()
            .client()
            .with_context(|| {
                format!(
                    "--env {env:?} is not a URL (http://host:port), so it names an environment registered on a console"
                )
            })?;
        let found = console.environment(env).await.map_err(|e| match e.status() {
            Some(404) => anyhow::anyhow!(
                "--env {env:?}: the console at {} has no environment of that name (`runway env list` shows them); give a registered name or a URL",
                console.base_url()
            ),
            _ => anyhow::Error::new(e).context(format!(
                "cannot ask the console at {} for environment {env:?}",
                console.base_url()
            )),
        })?;
        Ok((found.environment.address, Some(env.to_string())))
    }

    /// The environment URL without a trailing slash (for messages).
    pub fn env_url(&self) -> &str {
        self.env.trim().trim_end_matches('/')
    }
}

/// The token in `path` (surrounding whitespace trimmed), with errors naming
/// the file and the `flag` it was given by.
pub fn read_token_file(path: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}: cannot read the token", path.display()))?;
    let token = text.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "{flag} {}: the file is empty; it must hold the token",
        path.display()
    );
    Ok(token.to_owned())
}

/// `explicit` (flag or environment variable) if non-empty, else the first of
/// [`TOKEN_FILES`] (relative to `cwd`) that exists.
pub fn resolve_token(explicit: Option<&str>, cwd: &Path) -> anyhow::Result<String> {
    resolve_token_for(explicit, cwd, None)
}

/// [`resolve_token`] for an environment named `name` on the console: its
/// `runway up` token files (`.runway/<name>/admin.token`, `../.runway/<name>/admin.token`)
/// come before [`TOKEN_FILES`].
pub fn resolve_token_for(
    explicit: Option<&str>,
    cwd: &Path,
    name: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(t) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_owned());
    }
    let named: Vec<String> = name
        .filter(|n| !n.contains(['/', '\\']) && *n != ".." && *n != ".")
        .map(|n| {
            vec![
                format!(".runway/{n}/admin.token"),
                format!("../.runway/{n}/admin.token"),
            ]
        })
        .unwrap_or_default();
    let candidates = named
        .iter()
        .map(String::as_str)
        .chain(TOKEN_FILES.iter().copied());
    for rel in candidates {
        let path: PathBuf = cwd.join(rel);
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the API token from {}", path.display()))?;
            let token = text.trim();
            anyhow::ensure!(
                !token.is_empty(),
                "the API token file {} is empty; pass --token or set RUNWAY_TOKEN",
                path.display()
            );
            return Ok(token.to_owned());
        }
    }
    anyhow::bail!(
        "no API token: pass --token-file PATH (or --token, RUNWAY_TOKEN_FILE, RUNWAY_TOKEN); the first admin token is in <data-dir>/admin.token"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_url_with_credentials_is_refused() {
        let conn = Connection {
            env: "http://admin:hunter2@127.0.0.1:8080".into(),
            token: Some("t".into()),
            token_file: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(e) = rt.block_on(conn.client()) else {
            panic!("an environment URL with credentials must be refused")
        };
        let e = e.to_string();
        assert!(e.contains("--env") && e.contains("remove them"), "{e}");
        assert!(
            !e.contains("hunter2"),
            "the message repeats the password: {e}"
        );
    }

    #[test]
    fn token_files_are_read_trimmed_and_named_in_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("admin.token");
        std::fs::write(&path, "  rwt_abc\n").unwrap();
        assert_eq!(read_token_file(&path, "--token-file").unwrap(), "rwt_abc");
        std::fs::write(&path, "\n").unwrap();
        let e = read_token_file(&path, "--token-file")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("empty") && e.contains(&path.display().to_string()),
            "{e}"
        );
        let missing = tmp.path().join("nope");
        let e = read_token_file(&missing, "--join-token-file")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--join-token-file") && e.contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn token_resolution_order() {
        let tmp = tempfile::tempdir().unwrap();
        let inner = tmp.path().join("app");
        std::fs::create_dir_all(&inner).unwrap();
        let e = resolve_token(None, &inner).unwrap_err().to_string();
        assert!(e.starts_with("no API token: pass --token-file"), "{e}");
        assert_eq!(resolve_token(Some(" t1 "), &inner).unwrap(), "t1");

        std::fs::create_dir_all(tmp.path().join(".runway")).unwrap();
        std::fs::write(tmp.path().join(".runway/admin.token"), "parent\n").unwrap();
        assert_eq!(resolve_token(None, &inner).unwrap(), "parent");
        assert_eq!(resolve_token(Some(""), &inner).unwrap(), "parent");

        std::fs::create_dir_all(inner.join(".runway")).unwrap();
        std::fs::write(inner.join(".runway/admin.token"), "here").unwrap();
        assert_eq!(resolve_token(None, &inner).unwrap(), "here");
        assert_eq!(resolve_token(Some("flag"), &inner).unwrap(), "flag");
    }
}
