//! `runway login URL --user NAME` (password prompted, or `--password-stdin`)
//! or `runway login URL --token …` / `runway logout`: the console the CLI
//! talks to, and the session or token it uses, stored 0600 in `$XDG_CONFIG_HOME/runway/login.json`
//! (default `~/.config/runway/login.json`). Console commands (`env add|list|show|remove`,
//! `pipeline`, `apps`, `deploy`) use it; `--console URL` and
//! `--console-token` (or `RUNWAY_CONSOLE`, `RUNWAY_CONSOLE_TOKEN`) override it.
//!
//! Environment commands given `--env NAME` (an environment registered on that
//! console) without a token of their own talk to it with a token the console
//! issues for it ([`env_token`]), cached 0600 in `env-tokens.json` next to
//! `login.json` and fetched again a minute before it expires.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use runway_client::ConsoleClient;
use serde::{Deserialize, Serialize};

use crate::connection::read_token_file;

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The console's URL, e.g. http://127.0.0.1:8080.
    pub url: String,
    /// Log in as this IT user (password prompted without echo, or --password-stdin).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["token", "token_file"])]
    pub user: Option<String>,
    /// Read the user's password from the first line of stdin.
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
    /// The console's admin token, or a service account's token.
    #[arg(long, env = "RUNWAY_CONSOLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token (keeps it out of `ps`); takes precedence over --token.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Accept a plain-http console address that is not loopback.
    #[arg(long)]
    pub allow_insecure: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {}

/// Flags of every command that talks to the console.
#[derive(Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Console URL [default: the one of `runway login`].
    #[arg(long, env = "RUNWAY_CONSOLE", value_name = "URL")]
    pub console: Option<String>,
    /// Console token [default: the one of `runway login`].
    #[arg(
        long,
        env = "RUNWAY_CONSOLE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub console_token: Option<String>,
}

/// The flags of a console listing (`runway user|role|team|service-account
/// list`, `runway console account list`).
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// `-` for none, else the items joined by `sep` (a team's apps and
/// members, a role's levels and rights).
pub fn joined_or_dash<I, S>(items: I, sep: &str) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let items: Vec<S> = items.into_iter().collect();
    if items.is_empty() {
        return "-".into();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Prints one console record (`show`): JSON, or as `text` prints it.
pub fn print_record<T: Serialize>(
    value: &T,
    json: bool,
    text: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        return crate::commands::app::print_json(value);
    }
    text(value);
    Ok(())
}

/// Prints a console listing (`list`): JSON, or a table with `headers` and
/// one row per item.
pub fn print_listing<T: Serialize, const N: usize>(
    items: &[T],
    json: bool,
    headers: [&str; N],
    row: impl Fn(&T) -> [String; N],
) -> anyhow::Result<()> {
    if json {
        return crate::commands::app::print_json(&items);
    }
    let mut t = crate::output::Table::new(headers);
    for item in items {
        t.row(row(item));
    }
    print!("{}", t.render());
    Ok(())
}

/// What `runway login` stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub console: String,
    /// A console token (`rwc_…`) or a user's session token (`rws_…`).
    pub token: String,
    /// The user logged in, for a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `$XDG_CONFIG_HOME/runway/login.json`, else `$HOME/.config/runway/login.json`.
pub fn login_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return Ok(dir.join("runway").join("login.json"));
        }
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("cannot find your config directory: set XDG_CONFIG_HOME or HOME")?;
    Ok(PathBuf::from(home)
        .join(".config")
        .join("runway")
        .join("login.json"))
}

/// The stored login, if any.
pub fn stored_login() -> anyhow::Result<Option<Login>> {
    let path = login_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is not a login file; run `runway logout` and `runway login URL --token …` again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl ConsoleArgs {
    /// The flags as their environment variables give them (for commands
    /// that reach the console without console flags of their own).
    pub fn from_env() -> ConsoleArgs {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        ConsoleArgs {
            console: var("RUNWAY_CONSOLE"),
            console_token: var("RUNWAY_CONSOLE_TOKEN"),
        }
    }

    /// A client of the console: the flags, else the stored login.
    pub fn client(&self) -> anyhow::Result<ConsoleClient> {
        let (url, token) = self.resolve()?;
        Ok(ConsoleClient::new(&url, Some(token))?)
    }

    /// The console's URL and the token to use there: the flags, else the
    /// stored login.
    pub fn resolve(&self) -> anyhow::Result<(String, String)> {
        let login = stored_login()?;
        let url = self
            .console
            .clone()
            .or_else(|| login.as_ref().map(|l| l.console.clone()))
            .context(
                "not logged in to a console: run `runway login URL --user NAME` (or `--token \
                 TOKEN`: the admin token is in the console's data dir, admin.token), or give \
                 --console URL --console-token TOKEN",
            )?;
        let token = match (&self.console_token, &login) {
            (Some(t), _) => t.clone(),
            (None, Some(l))
                if self
                    .console
                    .as_deref()
                    .is_none_or(|u| same_url(u, &l.console)) =>
            {
                l.token.clone()
            }
            _ => bail!(
                "no token for console {url}: give --console-token (or RUNWAY_CONSOLE_TOKEN), or \
                 `runway login {url} --token …`"
            ),
        };
        Ok((url, token))
    }
}

/// A console-issued token is fetched again when it expires within this.
const REFRESH_BEFORE_MS: i64 = 60_000;

/// `env-tokens.json` next to `login.json` (0600): the tokens the console
/// issued for environments, per (console, environment, login credential).
pub fn env_tokens_path() -> anyhow::Result<PathBuf> {
    Ok(login_path()?.with_file_name("env-tokens.json"))
}

/// One cached console-issued token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedEnvToken {
    token: String,
    address: String,
    expires_at_ms: i64,
}

/// The cache key: which console, which environment, and which credential
/// asked (a hash of it, so another login never reuses a token).
fn env_token_key(console: &str, env: &str, credential: &str) -> String {
    use sha2::Digest as _;
    let who = hex::encode(&sha2::Sha256::digest(credential.as_bytes())[..8]);
    format!("{}|{env}|{who}", console.trim().trim_end_matches('/'))
}

fn read_env_tokens(path: &Path) -> std::collections::BTreeMap<String, CachedEnvToken> {
    // A damaged cache is only a cache: start a new one.
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// A token for environment `env` (its name on the console), issued by the
/// console the CLI is logged in to: from the cache while it has more than a
/// minute left, else asked from the console and cached. Returns the
/// environment's address (as registered) and the token.
pub async fn env_token(console: &ConsoleArgs, env: &str) -> anyhow::Result<(String, String)> {
    let (url, credential) = console.resolve()?;
    let path = env_tokens_path()?;
    let key = env_token_key(&url, env, &credential);
    let now = runway_store::now_ms();
    let mut cache = read_env_tokens(&path);
    if let Some(cached) = cache.get(&key)
        && cached.expires_at_ms - now > REFRESH_BEFORE_MS
    {
        return Ok((cached.address.clone(), cached.token.clone()));
    }
    let client = ConsoleClient::new(&url, Some(credential))?;
    let issued = client
        .environment_token(env)
        .await
        .map_err(|e| match e.status() {
            Some(404) => anyhow::anyhow!(
                "--env {env:?}: the console at {url} has no environment of that name (`runway env \
             list` shows them); give a registered name or a URL"
            ),
            Some(401 | 403) => anyhow::anyhow!(
                "the console at {url} gives you no token for environment {env:?}: {e}"
            ),
            _ => anyhow::Error::new(e).context(format!(
                "cannot get a token for environment {env:?} from the console at {url}"
            )),
        })?;
    cache.retain(|_, t| t.expires_at_ms > now);
    cache.insert(
        key,
        CachedEnvToken {
            token: issued.token.clone(),
            address: issued.address.clone(),
            expires_at_ms: issued.expires_at_ms,
        },
    );
    if let Some(dir) = path.parent() {
        runway_store::files::create_private_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    runway_store::files::write_atomically(&path, &serde_json::to_vec_pretty(&cache)?, Some(0o600))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((issued.address, issued.token))
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// Whether `url` is plain http to a host that is not loopback.
pub fn insecure(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return false;
    };
    if parsed.scheme() != "http" {
        return false;
    }
    match parsed.host() {
        Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => false,
    }
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    if insecure(&args.url) && !args.allow_insecure {
        bail!(
            "{} is plain http to a host that is not loopback: the credentials would cross the \
             network in clear; use https://, or --allow-insecure on a network you trust",
            args.url
        );
    }
    if let Some(user) = &args.user {
        return login_user(&args, user).await;
    }
    let token = match (&args.token_file, &args.token) {
        (Some(path), _) => read_token_file(path, "--token-file")?,
        (None, Some(t)) if !t.trim().is_empty() => t.trim().to_string(),
        _ => bail!(
            "give --user NAME (an IT user), or the console's token with --token TOKEN or \
             --token-file PATH (the first one is <console data dir>/admin.token)"
        ),
    };
    let client = ConsoleClient::new(&args.url, Some(token.clone()))?;
    let info = client
        .info()
        .await
        .with_context(|| format!("cannot log in to the console at {}", client.base_url()))?;
    let path = login_path()?;
    save(
        &path,
        &Login {
            console: client.base_url().to_string(),
            token,
            user: None,
        },
    )?;
    println!(
        "logged in to console {} as {} '{}' (saved in {})",
        client.base_url(),
        info.principal.kind.replace('_', " "),
        info.principal.name,
        path.display()
    );
    Ok(())
}

async fn login_user(args: &LoginArgs, user: &str) -> anyhow::Result<()> {
    let password = if args.password_stdin {
        crate::commands::user::read_stdin_line("password")?
    } else {
        crate::commands::user::prompt_password(&format!("password of {user}: "))?
    };
    let client = ConsoleClient::new(&args.url, None)?;
    let session = client
        .login(user, &password)
        .await
        .with_context(|| format!("cannot log in to the console at {}", client.base_url()))?;
    let path = login_path()?;
    save(
        &path,
        &Login {
            console: client.base_url().to_string(),
            token: session.token,
            user: Some(session.user.name.clone()),
        },
    )?;
    println!(
        "logged in to console {} as user '{}' (role {}; the session ends after {} min idle, \
         saved in {})",
        client.base_url(),
        session.user.name,
        session.user.role,
        session.idle_timeout_ms / 60_000,
        path.display()
    );
    Ok(())
}

fn save(path: &Path, login: &Login) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        runway_store::files::create_private_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(login)?;
    runway_store::files::write_atomically(path, &bytes, Some(0o600))
        .with_context(|| format!("cannot write {}", path.display()))
}

pub async fn logout(_args: LogoutArgs) -> anyhow::Result<()> {
    let path = login_path()?;
    // A user's session is ended on the console too (a token stays valid:
    // it is revoked on the console, not by logging out).
    if let Ok(Some(login)) = stored_login()
        && login.token.starts_with("rws_")
    {
        let ended = match ConsoleClient::new(&login.console, Some(login.token.clone())) {
            Ok(client) => client.logout().await.map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = ended {
            eprintln!(
                "runway: could not end the session on {} ({e:#}); it expires by itself",
                login.console
            );
        }
    }
    // The tokens the console issued for environments go with the login.
    if let Ok(tokens) = env_tokens_path() {
        let _ = std::fs::remove_file(tokens);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => println!("logged out (removed {})", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("not logged in ({} does not exist)", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn insecure_addresses() {
        assert!(super::insecure("http://10.0.0.5:8080"));
        assert!(super::insecure("http://console.example.com"));
        assert!(!super::insecure("http://127.0.0.1:8080"));
        assert!(!super::insecure("http://localhost:8080"));
        assert!(!super::insecure("http://[::1]:8080"));
        assert!(!super::insecure("https://console.example.com"));
    }
}
