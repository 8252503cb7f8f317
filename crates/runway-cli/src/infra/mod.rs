//! `infra.toml`: a whole Runway infrastructure described in one file — the
//! console, database servers, pipelines, environments (standalone or farm)
//! with their catalogs, zones and front-ends, balancers and reverse proxies,
//! hostnames — checked against the seeds' rules ([`check`]) and drawn
//! ([`draw`]).
//!
//! Pure: nothing here does I/O beyond the caller reading the file. Parsing
//! keeps the span of every value so each finding names its line.
//!
//! ```toml
//! [console]
//! server = "lt-1"                                    # the console's own server
//! address = "https://lifetime.example.com"
//! database = { server = "db-shared", catalog = "console" }
//!
//! [[database_server]]
//! name = "db-shared"
//! [[database_server]]
//! name = "db-prod-replica"
//! replica_of = "db-prod"                             # a standby replica
//!
//! [[pipeline]]
//! name = "main"
//! environments = ["dev", "test", "prod"]
//!
//! [[environment]]
//! name = "prod"
//! production = true
//! mode = "farm"                                      # or "standalone"
//! address = "https://prod.example.com"               # how the console reaches it
//! hostname = "www.example.com"                       # every absolute URL it makes
//! database = { server = "db-prod", catalog = "prod" }
//! [[environment.zone]]
//! name = "global"
//! address = "http://prod-lb:9080"                    # its balancer, or its only server
//! frontends = ["prod-fe-1", "prod-fe-2"]
//!
//! [[balancer]]
//! name = "prod-lb"
//! environment = "prod"
//! zone = "global"
//! address = "http://prod-lb:9080"
//!
//! [[reverse_proxy]]
//! name = "internet"
//! hostname = "www.example.com"
//! routes = [{ path = "/", environment = "prod", zone = "global" }]
//! ```

pub mod check;
pub mod draw;

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

/// A parsed `infra.toml`, with the span of every value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Infra {
    /// A title for the drawing.
    pub name: Option<String>,
    pub console: Option<Spanned<Console>>,
    #[serde(default)]
    pub database_server: Vec<Spanned<DatabaseServer>>,
    #[serde(default)]
    pub pipeline: Vec<Spanned<Pipeline>>,
    #[serde(default)]
    pub environment: Vec<Spanned<Environment>>,
    #[serde(default)]
    pub balancer: Vec<Spanned<Balancer>>,
    #[serde(default)]
    pub reverse_proxy: Vec<Spanned<ReverseProxy>>,
}

/// The infrastructure console (LifeTime): its own server and catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    pub server: Spanned<String>,
    pub address: Option<Spanned<String>>,
    pub database: Spanned<Catalog>,
}

/// A database on a database server.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub server: Spanned<String>,
    pub catalog: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseServer {
    pub name: Spanned<String>,
    /// A standby replica of another database server.
    pub replica_of: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub name: Spanned<String>,
    pub environments: Spanned<Vec<Spanned<String>>>,
}

/// `standalone`: one server runs the controller and the only front-end;
/// `farm`: a controller and front-ends behind balancers.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Standalone,
    Farm,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: Spanned<String>,
    #[serde(default)]
    pub production: bool,
    pub mode: Spanned<Mode>,
    /// How the console reaches the environment's API.
    pub address: Spanned<String>,
    /// The environment's hostname setting.
    pub hostname: Option<Spanned<String>>,
    pub database: Spanned<Catalog>,
    #[serde(default)]
    pub zone: Vec<Spanned<Zone>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub https_internal: bool,
    pub frontends: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Balancer {
    pub name: Spanned<String>,
    pub environment: Spanned<String>,
    pub zone: Spanned<String>,
    pub address: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseProxy {
    pub name: Spanned<String>,
    pub hostname: Spanned<String>,
    #[serde(default)]
    pub tls: Option<bool>,
    pub routes: Spanned<Vec<Spanned<ProxyRoute>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    pub path: Spanned<String>,
    pub environment: Spanned<String>,
    pub zone: Spanned<String>,
}

/// A syntax error or a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses the text of `file` (its name is only for messages).
pub fn parse(text: &str, file: &str) -> Result<Infra, ParseError> {
    toml::from_str(text).map_err(|e| ParseError {
        file: file.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: format!(
            "{}; see the format at the top of examples/infra/basic.toml",
            e.message().lines().collect::<Vec<_>>().join("; ")
        ),
    })
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The span's start line.
pub(crate) fn line(text: &str, span: &Range<usize>) -> usize {
    line_of(text, span.start)
}
