//! The reverse-proxy configuration file of `runway balancer serve --config
//! FILE`: listeners, certificates, the controller, routes.
//!
//! ```toml
//! [[listener]]
//! address = "0.0.0.0:443"
//! protocol = "https"              # http | https | redirect-to-https
//!
//! [[listener]]
//! address = "0.0.0.0:80"
//! protocol = "redirect-to-https"  # 308 to the same host and path on the https listener
//!
//! [[certificate]]                 # serves the DNS names it holds; the first is the default
//! chain = "certs/www.pem"         # paths are relative to this file
//! key = "certs/www.key"
//!
//! [controller]                    # where the front-ends of a zone come from
//! url = "http://10.0.0.5:9000"
//! token_file = "read.token"
//! standby = ["http://10.0.0.6:9000"]
//!
//! [[route]]
//! host = "www.example.com"        # optional: any host when left out
//! path = "/"                      # a path prefix, default "/"
//! zone = "global"                 # the controller's front-ends …
//!
//! [[route]]
//! path = "/legacy"
//! upstreams = ["http://10.0.0.9:8080"]   # … or fixed upstreams
//!
//! [balancer]                      # optional
//! policy = "least-outstanding"
//! workers = 2
//! ```
//!
//! Everything is checked by [`load`] before anything binds: each problem is
//! one [`FileError`], `{file}:{line}: {key} = {value}: {problem}; {fix}`,
//! pointing at the line of the value (certificates are loaded and checked
//! here too: missing file, key that does not match, expired).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::config::{
    BalancerConfig, Discovery, ListenerConfig, ListenerRole, ProxyConfig, RouteConfig, RouteTarget,
    upstream_name,
};
use crate::tls::{CertificateError, CertificateFiles, Certificates};

/// The zone every environment has.
pub const GLOBAL_ZONE: &str = "global";

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    /// 1-based; `None` when the problem has no place (an empty file).
    pub line: Option<usize>,
    /// Everything after `file:line: `.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for FileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    listener: Vec<Spanned<RawListener>>,
    #[serde(default)]
    certificate: Vec<Spanned<RawCertificate>>,
    controller: Option<Spanned<RawController>>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
    balancer: Option<RawTuning>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: Spanned<String>,
    protocol: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    chain: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    url: Spanned<String>,
    token_file: Spanned<String>,
    #[serde(default)]
    standby: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    zone: Option<Spanned<String>>,
    upstreams: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTuning {
    policy: Option<Spanned<String>>,
    workers: Option<Spanned<usize>>,
}

/// Reads and checks `path`; the configuration it describes, with every
/// other setting at its default (the caller may change those).
pub fn load(path: &Path) -> Result<BalancerConfig, FileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: file.clone(),
        line: None,
        message: format!(
            "cannot read the configuration file: {e}; check the path given to --config"
        ),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &file, base)
}

/// What [`load`] does once the file is read; `base` is the directory that
/// relative paths start from.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<BalancerConfig, FileError> {
    let at = Place { text, file };
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let message = e.message().lines().collect::<Vec<_>>().join("; ");
        at.error(
            e.span(),
            format!("{message}; the file's format is in README.md (\"A reverse proxy with TLS\")"),
        )
    })?;

    // Listeners.
    if raw.listener.is_empty() {
        return Err(at.error(
            None,
            "no [[listener]]: give at least one, e.g. address = \"0.0.0.0:443\" with \
             protocol = \"https\""
                .into(),
        ));
    }
    let mut listeners = Vec::new();
    let mut seen_addrs: HashMap<SocketAddr, usize> = HashMap::new();
    for (index, listener) in raw.listener.iter().enumerate() {
        let l = listener.get_ref();
        let key = format!("listener[{index}]");
        let addr: SocketAddr = l.address.get_ref().parse().map_err(|_| {
            at.value_error(
                &l.address,
                &format!("{key}.address"),
                "is not an address",
                "give IP:PORT, such as \"0.0.0.0:443\" or \"[::]:443\"",
            )
        })?;
        // Port 0 picks a free port per listener: never the same address.
        if addr.port() != 0
            && let Some(first) = seen_addrs.insert(addr, at.line(l.address.span().start))
        {
            return Err(at.value_error(
                &l.address,
                &format!("{key}.address"),
                &format!("is already the address of the listener on line {first}"),
                "give each listener its own address",
            ));
        }
        let role = match l.protocol.get_ref().as_str() {
            "http" => ListenerRole::Http,
            "https" => ListenerRole::Https,
            "redirect-to-https" => ListenerRole::RedirectToHttps,
            _ => {
                return Err(at.value_error(
                    &l.protocol,
                    &format!("{key}.protocol"),
                    "is not a protocol the balancer knows",
                    "use \"http\", \"https\" or \"redirect-to-https\"",
                ));
            }
        };
        listeners.push((ListenerConfig { addr, role }, &l.protocol));
    }
    let https = listeners.iter().any(|(l, _)| l.role == ListenerRole::Https);
    if !https
        && let Some(protocol) = listeners
            .iter()
            .find(|(l, _)| l.role == ListenerRole::RedirectToHttps)
            .map(|(_, protocol)| *protocol)
    {
        return Err(at.value_error(
            protocol,
            "listener.protocol",
            "redirects to https, but no listener is https",
            "add a [[listener]] with protocol = \"https\" (and a [[certificate]])",
        ));
    }

    // Certificates.
    if https && raw.certificate.is_empty() {
        let protocol = listeners
            .iter()
            .find(|(l, _)| l.role == ListenerRole::Https)
            .map(|(_, protocol)| *protocol)
            .expect("checked");
        return Err(at.value_error(
            protocol,
            "listener.protocol",
            "needs a certificate, and the file has no [[certificate]]",
            "add [[certificate]] with chain = \"FILE.pem\" and key = \"FILE.key\"",
        ));
    }
    if !https && let Some(first) = raw.certificate.first() {
        return Err(at.error(
            Some(first.span()),
            "[[certificate]] is given but no listener is https; add a [[listener]] with \
             protocol = \"https\", or remove the certificate"
                .into(),
        ));
    }
    let mut certificates = Vec::new();
    for certificate in &raw.certificate {
        let c = certificate.get_ref();
        let files = CertificateFiles {
            chain: base.join(c.chain.get_ref()),
            key: base.join(c.key.get_ref()),
        };
        Certificates::load(std::slice::from_ref(&files))
            .map_err(|e| certificate_error(&at, c, &files, e))?;
        certificates.push((files, c));
    }
    if certificates.len() > 1 {
        let all: Vec<CertificateFiles> = certificates.iter().map(|(f, _)| f.clone()).collect();
        if let Err(e) = Certificates::load(&all) {
            let (files, raw) = certificates
                .iter()
                .find(|(f, _)| f.chain == e.file || f.key == e.file)
                .unwrap_or(&certificates[0]);
            return Err(certificate_error(&at, raw, files, e));
        }
    }

    // The controller.
    let controller = match &raw.controller {
        None => None,
        Some(controller) => {
            let c = controller.get_ref();
            let url = controller_url(&at, &c.url, "controller.url")?;
            let mut standbys = Vec::new();
            for (index, standby) in c.standby.iter().enumerate() {
                standbys.push(controller_url(
                    &at,
                    standby,
                    &format!("controller.standby[{index}]"),
                )?);
            }
            let token_path = base.join(c.token_file.get_ref());
            let token = std::fs::read_to_string(&token_path).map_err(|e| {
                at.value_error(
                    &c.token_file,
                    "controller.token_file",
                    &format!("cannot be read ({e})"),
                    "give the file holding an API token with read scope (e.g. the controller's \
                     admin.token), relative to this file",
                )
            })?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(at.value_error(
                    &c.token_file,
                    "controller.token_file",
                    "is empty",
                    "put the API token in it",
                ));
            }
            Some((url, standbys, token, controller.span()))
        }
    };

    // Routes.
    if raw.route.is_empty() {
        return Err(at.error(
            None,
            "no [[route]]: give at least one, e.g. path = \"/\" with zone = \"global\" or \
             upstreams = [\"http://HOST:PORT\"]"
                .into(),
        ));
    }
    let mut routes = Vec::new();
    let mut seen_routes: HashMap<(Option<String>, String), usize> = HashMap::new();
    for (index, route) in raw.route.iter().enumerate() {
        let r = route.get_ref();
        let key = format!("route[{index}]");
        let route_line = at.line(route.span().start);
        let host = match &r.host {
            None => None,
            Some(host) => {
                let value = host.get_ref().trim_end_matches('.').to_ascii_lowercase();
                let valid = !value.is_empty()
                    && value.len() <= 253
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
                if !valid {
                    return Err(at.value_error(
                        host,
                        &format!("{key}.host"),
                        "is not a host name",
                        "give the name clients use, without scheme, port or path, such as \
                         \"www.example.com\"",
                    ));
                }
                Some(value)
            }
        };
        let path = match &r.path {
            None => "/".to_string(),
            Some(path) => {
                let value = path.get_ref();
                if !value.starts_with('/')
                    || value.contains(['?', '#', ' '])
                    || value.contains("//")
                    || value.parse::<http::uri::PathAndQuery>().is_err()
                {
                    return Err(at.value_error(
                        path,
                        &format!("{key}.path"),
                        "is not a path prefix",
                        "give a path starting with /, without query, such as \"/App1\"",
                    ));
                }
                match value.trim_end_matches('/') {
                    "" => "/".to_string(),
                    trimmed => trimmed.to_string(),
                }
            }
        };
        let place = r
            .path
            .as_ref()
            .map(|p| p.span())
            .or(r.host.as_ref().map(|h| h.span()))
            .unwrap_or(route.span());
        if let Some(first) = seen_routes.insert((host.clone(), path.clone()), route_line) {
            return Err(at.error(
                Some(place),
                format!(
                    "{key}: host {} and path {path} overlap the route on line {first}: both would \
                     take the same requests; keep one of them, or change the host or the path",
                    host.as_deref().unwrap_or("(any)"),
                ),
            ));
        }
        let target = match (&r.zone, &r.upstreams) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(at.error(
                    Some(route.span()),
                    format!(
                        "{key}: a route goes to a zone or to upstreams: give exactly one of \
                         zone = \"{GLOBAL_ZONE}\" or upstreams = [\"http://HOST:PORT\"]"
                    ),
                ));
            }
            (Some(zone), None) => {
                if !valid_zone_name(zone.get_ref()) {
                    return Err(at.value_error(
                        zone,
                        &format!("{key}.zone"),
                        "is not a zone name",
                        "use the name `runway zone list` shows (letters, digits, '-' or '.')",
                    ));
                }
                if controller.is_none() {
                    return Err(at.value_error(
                        zone,
                        &format!("{key}.zone"),
                        "needs a controller to find the zone's front-ends, and the file has \
                         no [controller]",
                        "add [controller] with url = \"http://HOST:PORT\" and token_file = \"FILE\"",
                    ));
                }
                RouteTarget::Zone {
                    zone: zone.get_ref().clone(),
                    at: format!("{}:{} ({key}.zone)", at.file, at.line(zone.span().start)),
                }
            }
            (None, Some(upstreams)) => {
                if upstreams.get_ref().is_empty() {
                    return Err(at.value_error(
                        upstreams,
                        &format!("{key}.upstreams"),
                        "is empty",
                        "give at least one \"http://HOST:PORT\"",
                    ));
                }
                let mut urls = Vec::new();
                for (i, upstream) in upstreams.get_ref().iter().enumerate() {
                    let checked = Url::parse(upstream.get_ref())
                        .map_err(|e| e.to_string())
                        .and_then(|url| upstream_name(&url).map(|_| url));
                    match checked {
                        Ok(url) => urls.push(url),
                        Err(reason) => {
                            return Err(at.value_error(
                                upstream,
                                &format!("{key}.upstreams[{i}]"),
                                &format!("is not an upstream ({reason})"),
                                "give http://HOST:PORT",
                            ));
                        }
                    }
                }
                RouteTarget::Static(urls)
            }
        };
        routes.push(RouteConfig {
            host,
            path_prefix: path,
            target,
        });
    }

    let discovery = match &controller {
        Some((url, _, token, _)) => Discovery::Controller {
            url: url.clone(),
            token: token.clone(),
            interval: Duration::from_secs(1),
        },
        None => Discovery::Static(Vec::new()),
    };
    let first_listener = listeners[0].0.addr;
    let mut config = BalancerConfig::new(first_listener, discovery);
    if let Some((_, standbys, _, _)) = controller {
        config.standby_controllers = standbys;
    }
    if let Some(tuning) = &raw.balancer {
        if let Some(policy) = &tuning.policy {
            config.policy = policy.get_ref().parse().map_err(|_| {
                at.value_error(
                    policy,
                    "balancer.policy",
                    "is not a policy",
                    "use \"least-outstanding\" or \"round-robin\"",
                )
            })?;
        }
        if let Some(workers) = &tuning.workers {
            if *workers.get_ref() == 0 {
                return Err(at.error(
                    Some(workers.span()),
                    "balancer.workers = 0: there must be at least one worker thread; give 1 or \
                     more, or leave it out for one per CPU"
                        .into(),
                ));
            }
            config.workers = *workers.get_ref();
        }
    }
    config.proxy = Some(ProxyConfig {
        listeners: listeners.into_iter().map(|(l, _)| l).collect(),
        certificates: certificates.into_iter().map(|(f, _)| f).collect(),
        routes,
    });
    Ok(config)
}

/// The file's text and name, to turn spans into lines.
struct Place<'a> {
    text: &'a str,
    file: &'a str,
}

impl Place<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: Option<Range<usize>>, message: String) -> FileError {
        FileError {
            file: self.file.to_string(),
            line: span.map(|s| self.line(s.start)),
            message,
        }
    }

    fn value_error<T: std::fmt::Debug>(
        &self,
        value: &Spanned<T>,
        key: &str,
        problem: &str,
        fix: &str,
    ) -> FileError {
        self.error(
            Some(value.span()),
            format!("{key} = {:?}: {problem}; {fix}", value.get_ref()),
        )
    }
}

fn certificate_error(
    at: &Place<'_>,
    raw: &RawCertificate,
    files: &CertificateFiles,
    error: CertificateError,
) -> FileError {
    let (key, value) = if error.file == files.key {
        ("certificate.key", &raw.key)
    } else {
        ("certificate.chain", &raw.chain)
    };
    at.error(
        Some(value.span()),
        format!(
            "{key} = {:?}: {} {}; {}",
            value.get_ref(),
            error.file.display(),
            error.problem,
            error.fix
        ),
    )
}

fn controller_url(at: &Place<'_>, value: &Spanned<String>, key: &str) -> Result<Url, FileError> {
    let url = Url::parse(value.get_ref()).map_err(|e| {
        at.value_error(
            value,
            key,
            &format!("is not a URL ({e})"),
            "give http://HOST:PORT",
        )
    })?;
    if url.scheme() != "http" || url.host_str().is_none() {
        return Err(at.value_error(
            value,
            key,
            "is not an http:// URL with a host",
            "give http://HOST:PORT (the balancer reaches controllers over plain HTTP on a \
             private network)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(at.value_error(
            value,
            key,
            "carries credentials",
            "remove user:password@ and put the API token in token_file",
        ));
    }
    Ok(url)
}

/// A deployment zone's name: 1 to 63 letters, digits, '-' or '.' (as the
/// controller accepts them).
fn valid_zone_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
