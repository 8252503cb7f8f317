//! The seeds' rules for an infrastructure, each finding explained with its
//! line, its rule and the fix.
//!
//! | rule | severity | what it says |
//! |---|---|---|
//! | `reference` | error | names are unique; every name a value refers to exists |
//! | `console-dedicated` | error | the console has its own server and catalog: never an environment's (seed 001: LifeTime runs in a dedicated environment) |
//! | `standalone` | error | a standalone environment is one server: one zone, one front-end, no balancer |
//! | `farm-balancer` | error | a farm's zone with more than one front-end has a balancer |
//! | `zone-address` | error | a zone's address is its balancer's address, or its only server's (scenarios 3 and 5) |
//! | `separate-catalogs` | error | environments (and the console) never share a catalog |
//! | `production-database` | warning | a production environment on a database server that others use |
//! | `one-hostname` | error / warning | an environment behind reverse proxies has one hostname, one of theirs; with several (scenario 6) the others get links to it |
//! | `console-https` | error | the console reaches every environment over HTTPS unless it is on loopback (scenarios 8 and 9) |

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use toml::Spanned;
use url::Url;

use super::{Infra, Mode, line};

/// How bad a finding is: errors fail `runway infra check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One broken (or doubtful) rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: Option<usize>,
    pub severity: Severity,
    pub rule: &'static str,
    pub problem: String,
    pub fix: String,
}

impl Finding {
    /// `{file}:{line}: error[rule]: problem; fix`
    pub fn render(&self, file: &str) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let place = match self.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        };
        format!(
            "{place}: {severity}[{}]: {}; {}",
            self.rule, self.problem, self.fix
        )
    }
}

/// What the file holds, counted as the seeds count servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub environments: usize,
    pub pipelines: usize,
    pub database_servers: usize,
    /// The console's server and every front-end.
    pub frontend_servers: usize,
    pub balancers: usize,
    pub reverse_proxies: usize,
}

pub fn counts(infra: &Infra) -> Counts {
    Counts {
        environments: infra.environment.len(),
        pipelines: infra.pipeline.len(),
        database_servers: infra.database_server.len(),
        frontend_servers: usize::from(infra.console.is_some())
            + infra
                .environment
                .iter()
                .flat_map(|e| &e.get_ref().zone)
                .map(|z| z.get_ref().frontends.get_ref().len())
                .sum::<usize>(),
        balancers: infra.balancer.len(),
        reverse_proxies: infra.reverse_proxy.len(),
    }
}

struct Checker<'a> {
    text: &'a str,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn at(&self, span: &Range<usize>) -> Option<usize> {
        Some(line(self.text, span))
    }

    fn error(
        &mut self,
        span: Option<Range<usize>>,
        rule: &'static str,
        problem: String,
        fix: &str,
    ) {
        self.push(span, Severity::Error, rule, problem, fix);
    }

    fn warn(&mut self, span: Option<Range<usize>>, rule: &'static str, problem: String, fix: &str) {
        self.push(span, Severity::Warning, rule, problem, fix);
    }

    fn push(
        &mut self,
        span: Option<Range<usize>>,
        severity: Severity,
        rule: &'static str,
        problem: String,
        fix: &str,
    ) {
        let line = span.and_then(|s| self.at(&s));
        self.findings.push(Finding {
            line,
            severity,
            rule,
            problem,
            fix: fix.to_string(),
        });
    }

    /// Reports a second use of a name; returns whether it was new.
    fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        what: &str,
        name: &Spanned<String>,
    ) -> bool {
        let this = line(self.text, &name.span());
        if let Some(first) = seen.get(name.get_ref()) {
            self.error(
                Some(name.span()),
                "reference",
                format!(
                    "{what} {:?} is already named on line {first}",
                    name.get_ref()
                ),
                "give each one its own name",
            );
            return false;
        }
        seen.insert(name.get_ref().clone(), this);
        true
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn same_address(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.trim_end_matches('/') == b.trim_end_matches('/'),
    }
}

/// Every finding, in file order (errors and warnings).
pub fn check(infra: &Infra, text: &str) -> Vec<Finding> {
    let mut c = Checker {
        text,
        findings: Vec::new(),
    };

    // reference: unique names.
    let mut db_names = HashMap::new();
    for db in &infra.database_server {
        c.unique(&mut db_names, "database server", &db.get_ref().name);
    }
    for db in &infra.database_server {
        if let Some(primary) = &db.get_ref().replica_of
            && !db_names.contains_key(primary.get_ref())
        {
            c.error(
                Some(primary.span()),
                "reference",
                format!(
                    "replica_of = {:?} names no [[database_server]]",
                    primary.get_ref()
                ),
                "name a database server of this file",
            );
        }
    }
    let mut env_names = HashMap::new();
    for env in &infra.environment {
        c.unique(&mut env_names, "environment", &env.get_ref().name);
    }
    let mut servers: HashMap<String, usize> = HashMap::new();
    for env in &infra.environment {
        for zone in &env.get_ref().zone {
            for frontend in zone.get_ref().frontends.get_ref() {
                // A server belongs to one environment and one zone.
                c.unique(&mut servers, "front-end server", frontend);
            }
        }
    }
    let mut pipeline_names = HashMap::new();
    for pipeline in &infra.pipeline {
        let p = pipeline.get_ref();
        c.unique(&mut pipeline_names, "pipeline", &p.name);
        for env in p.environments.get_ref() {
            if !env_names.contains_key(env.get_ref()) {
                c.error(
                    Some(env.span()),
                    "reference",
                    format!(
                        "pipeline {:?} lists environment {:?}, which no [[environment]] defines",
                        p.name.get_ref(),
                        env.get_ref()
                    ),
                    "add the environment or remove it from the pipeline",
                );
            }
        }
    }
    let catalog_refs = infra
        .console
        .iter()
        .map(|console| &console.get_ref().database)
        .chain(infra.environment.iter().map(|e| &e.get_ref().database));
    for catalog in catalog_refs {
        let server = &catalog.get_ref().server;
        if !db_names.contains_key(server.get_ref()) {
            c.error(
                Some(server.span()),
                "reference",
                format!("database server {:?} is not defined", server.get_ref()),
                "add a [[database_server]] with that name",
            );
        }
    }
    let zone_of = |env: &str, zone: &str| {
        infra
            .environment
            .iter()
            .find(|e| e.get_ref().name.get_ref() == env)
            .and_then(|e| {
                e.get_ref()
                    .zone
                    .iter()
                    .find(|z| z.get_ref().name.get_ref() == zone)
            })
    };
    let mut balancer_names = HashMap::new();
    for balancer in &infra.balancer {
        let b = balancer.get_ref();
        c.unique(&mut balancer_names, "balancer", &b.name);
        if !env_names.contains_key(b.environment.get_ref()) {
            c.error(
                Some(b.environment.span()),
                "reference",
                format!(
                    "balancer {:?} is for environment {:?}, which is not defined",
                    b.name.get_ref(),
                    b.environment.get_ref()
                ),
                "name an [[environment]] of this file",
            );
        } else if zone_of(b.environment.get_ref(), b.zone.get_ref()).is_none() {
            c.error(
                Some(b.zone.span()),
                "reference",
                format!(
                    "balancer {:?} is for zone {:?}, which environment {:?} does not have",
                    b.name.get_ref(),
                    b.zone.get_ref(),
                    b.environment.get_ref()
                ),
                "name one of the environment's [[environment.zone]]",
            );
        }
    }
    let mut proxy_names = HashMap::new();
    for proxy in &infra.reverse_proxy {
        let p = proxy.get_ref();
        c.unique(&mut proxy_names, "reverse proxy", &p.name);
        for route in p.routes.get_ref() {
            let r = route.get_ref();
            if !env_names.contains_key(r.environment.get_ref()) {
                c.error(
                    Some(r.environment.span()),
                    "reference",
                    format!(
                        "reverse proxy {:?} routes {} to environment {:?}, which is not defined",
                        p.name.get_ref(),
                        r.path.get_ref(),
                        r.environment.get_ref()
                    ),
                    "name an [[environment]] of this file",
                );
            } else if zone_of(r.environment.get_ref(), r.zone.get_ref()).is_none() {
                c.error(
                    Some(r.zone.span()),
                    "reference",
                    format!("reverse proxy {:?} routes {} to zone {:?}, which environment {:?} does not have", p.name.get_ref(), r.path.get_ref(), r.zone.get_ref(), r.environment.get_ref()),
                    "name one of the environment's zones (\"global\" unless it has others)",
                );
            }
        }
    }

    // console-dedicated.
    match &infra.console {
        None => c.error(
            None,
            "console-dedicated",
            "the file has no [console]: every infrastructure has one console, on its own server"
                .into(),
            "add [console] with server, address and database",
        ),
        Some(console) => {
            let console = console.get_ref();
            let server = console.server.get_ref();
            let owner = infra.environment.iter().find(|e| {
                e.get_ref().zone.iter().any(|z| {
                    z.get_ref()
                        .frontends
                        .get_ref()
                        .iter()
                        .any(|f| f.get_ref() == server)
                })
            });
            if let Some(env) = owner {
                c.error(
                    Some(console.server.span()),
                    "console-dedicated",
                    format!("the console runs on server {server:?}, a front-end of environment {:?}: the console is never installed in an environment", env.get_ref().name.get_ref()),
                    "give the console a server of its own",
                );
            }
            if infra
                .balancer
                .iter()
                .any(|b| b.get_ref().name.get_ref() == server)
            {
                c.error(
                    Some(console.server.span()),
                    "console-dedicated",
                    format!("the console runs on server {server:?}, which is a balancer"),
                    "give the console a server of its own",
                );
            }
            let db = console.database.get_ref();
            for env in &infra.environment {
                let e = env.get_ref().database.get_ref();
                if e.server.get_ref() == db.server.get_ref()
                    && e.catalog.get_ref() == db.catalog.get_ref()
                {
                    c.error(
                        Some(db.catalog.span()),
                        "console-dedicated",
                        format!("the console's catalog {:?} on {:?} is environment {:?}'s catalog: the console keeps its own", db.catalog.get_ref(), db.server.get_ref(), env.get_ref().name.get_ref()),
                        "give the console a catalog of its own (it may share the database server)",
                    );
                }
            }
        }
    }

    for env in &infra.environment {
        let e = env.get_ref();
        let name = e.name.get_ref();
        let balancers: Vec<_> = infra
            .balancer
            .iter()
            .filter(|b| b.get_ref().environment.get_ref() == name)
            .collect();

        // standalone / farm-balancer.
        match *e.mode.get_ref() {
            Mode::Standalone => {
                let frontends: usize = e
                    .zone
                    .iter()
                    .map(|z| z.get_ref().frontends.get_ref().len())
                    .sum();
                if e.zone.len() != 1 || frontends != 1 {
                    c.error(
                        Some(e.mode.span()),
                        "standalone",
                        format!("environment {name:?} is standalone but has {} zone(s) and {frontends} front-end(s): a standalone environment is one server", e.zone.len()),
                        "give it one zone with one front-end, or make it mode = \"farm\" with a balancer",
                    );
                }
                if let Some(balancer) = balancers.first() {
                    c.error(
                        Some(balancer.get_ref().environment.span()),
                        "standalone",
                        format!("balancer {:?} is for standalone environment {name:?}, which has one server and no balancer", balancer.get_ref().name.get_ref()),
                        "remove the balancer, or make the environment mode = \"farm\"",
                    );
                }
            }
            Mode::Farm => {
                for zone in &e.zone {
                    let z = zone.get_ref();
                    let count = z.frontends.get_ref().len();
                    let has = balancers
                        .iter()
                        .any(|b| b.get_ref().zone.get_ref() == z.name.get_ref());
                    if count > 1 && !has {
                        c.error(
                            Some(z.frontends.span()),
                            "farm-balancer",
                            format!("zone {:?} of farm {name:?} has {count} front-ends and no balancer", z.name.get_ref()),
                            "add a [[balancer]] with environment and zone set, and use its address as the zone's address",
                        );
                    }
                }
            }
        }
        if e.zone.is_empty() {
            c.error(
                Some(e.name.span()),
                "farm-balancer",
                format!("environment {name:?} has no [[environment.zone]], so no front-end"),
                "add a zone \"global\" with its front-ends and address",
            );
        }

        // zone-address.
        for zone in &e.zone {
            let z = zone.get_ref();
            let address = z.address.get_ref();
            let url = match Url::parse(address) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                    url
                }
                _ => {
                    c.error(
                        Some(z.address.span()),
                        "zone-address",
                        format!("zone {:?} of {name:?} has address {address:?}, which is not an http(s) URL", z.name.get_ref()),
                        "give the URL of the zone's balancer, or of its only server, such as \"http://lb-1:9080\"",
                    );
                    continue;
                }
            };
            if z.https_internal && url.scheme() != "https" {
                c.error(
                    Some(z.address.span()),
                    "zone-address",
                    format!("zone {:?} of {name:?} uses HTTPS for internal communication but its address {address:?} is http://", z.name.get_ref()),
                    "give its https:// address, or set https_internal = false",
                );
            }
            let balancer = balancers
                .iter()
                .find(|b| b.get_ref().zone.get_ref() == z.name.get_ref());
            match balancer {
                Some(balancer) => {
                    if !same_address(balancer.get_ref().address.get_ref(), address) {
                        c.error(
                            Some(z.address.span()),
                            "zone-address",
                            format!("zone {:?} of {name:?} has address {address:?}, but its balancer {:?} is at {:?}: a zone's address is its balancer's", z.name.get_ref(), balancer.get_ref().name.get_ref(), balancer.get_ref().address.get_ref()),
                            "set the zone's address to the balancer's address",
                        );
                    }
                }
                None => {
                    let frontends = z.frontends.get_ref();
                    let only = (frontends.len() == 1).then(|| frontends[0].get_ref());
                    if let Some(server) = only
                        && url.host_str() != Some(server.as_str())
                    {
                        c.error(
                            Some(z.address.span()),
                            "zone-address",
                            format!("zone {:?} of {name:?} has no balancer, so its address must be its only server {server:?}, not {address:?}", z.name.get_ref()),
                            "use that server's address (http://SERVER:PORT), or add a balancer for the zone",
                        );
                    }
                }
            }
        }

        // console-https.
        let address = e.address.get_ref();
        match Url::parse(address) {
            Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)) => {}
            Ok(url) if url.scheme() == "http" => c.error(
                Some(e.address.span()),
                "console-https",
                format!("the console reaches environment {name:?} at {address:?}: the console requires HTTPS to every environment that is not on loopback"),
                "give the https:// address (the reverse proxy's, if it offloads TLS: scenarios 8 and 9)",
            ),
            _ => c.error(
                Some(e.address.span()),
                "console-https",
                format!("environment {name:?} has address {address:?}, which is not an https:// URL"),
                "give the https:// address the console reaches the environment's API at",
            ),
        }
    }

    // separate-catalogs and production-database.
    let mut catalogs: HashMap<(String, String), (String, usize)> = HashMap::new();
    let mut users_of_server: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(console) = &infra.console {
        let db = console.get_ref().database.get_ref();
        users_of_server
            .entry(db.server.get_ref().clone())
            .or_default()
            .push("the console".into());
    }
    for env in &infra.environment {
        let e = env.get_ref();
        let db = e.database.get_ref();
        let key = (db.server.get_ref().clone(), db.catalog.get_ref().clone());
        if let Some((other, first)) = catalogs.get(&key) {
            c.error(
                Some(db.catalog.span()),
                "separate-catalogs",
                format!("environment {:?} uses catalog {:?} on {:?}, which environment {other:?} uses (line {first}): environments never share catalogs", e.name.get_ref(), key.1, key.0),
                "give each environment its own catalog (database), even on a shared server",
            );
        } else {
            catalogs.insert(
                key,
                (e.name.get_ref().clone(), line(text, &db.catalog.span())),
            );
        }
        users_of_server
            .entry(db.server.get_ref().clone())
            .or_default()
            .push(format!("{:?}", e.name.get_ref()));
    }
    for env in infra.environment.iter().filter(|e| e.get_ref().production) {
        let e = env.get_ref();
        let server = e.database.get_ref().server.get_ref();
        let me = format!("{:?}", e.name.get_ref());
        let others: Vec<&String> = users_of_server
            .get(server)
            .into_iter()
            .flatten()
            .filter(|u| **u != me)
            .collect();
        if !others.is_empty() {
            c.warn(
                Some(e.database.get_ref().server.span()),
                "production-database",
                format!(
                    "production environment {me} shares database server {server:?} with {}",
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "give production a dedicated database server (the seeds' editions all do)",
            );
        }
    }

    // one-hostname.
    for env in &infra.environment {
        let e = env.get_ref();
        let name = e.name.get_ref();
        let mut hostnames: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for proxy in &infra.reverse_proxy {
            let p = proxy.get_ref();
            if p.routes
                .get_ref()
                .iter()
                .any(|r| r.get_ref().environment.get_ref() == name)
                && seen.insert(p.hostname.get_ref().as_str())
            {
                hostnames.push(p.hostname.get_ref());
            }
        }
        if hostnames.is_empty() {
            continue;
        }
        match &e.hostname {
            None => c.error(
                Some(e.name.span()),
                "one-hostname",
                format!("environment {name:?} is reached through reverse proxy hostname(s) {} but sets no hostname, so the URLs it makes point at its own servers", hostnames.join(", ")),
                "set hostname to the one clients use (scenario 2)",
            ),
            Some(hostname) if !hostnames.contains(&hostname.get_ref().as_str()) => c.error(
                Some(hostname.span()),
                "one-hostname",
                format!("environment {name:?} has hostname {:?}, which no reverse proxy in front of it answers to ({})", hostname.get_ref(), hostnames.join(", ")),
                "set hostname to one of the proxies' hostnames",
            ),
            Some(hostname) if hostnames.len() > 1 => {
                let others: Vec<&str> = hostnames.iter().copied().filter(|h| *h != hostname.get_ref()).collect();
                c.warn(
                    Some(hostname.span()),
                    "one-hostname",
                    format!("environment {name:?} is reached as {} but has one hostname, {:?}: every absolute URL it makes (runway.base_url, email links, the console's links) uses {:?}, so apps reached through {} get links to {:?} (scenario 6)", hostnames.join(" and "), hostname.get_ref(), hostname.get_ref(), others.join(", "), hostname.get_ref()),
                    "pick the hostname the apps that make absolute URLs are reached by, or split the apps into two environments",
                );
            }
            Some(_) => {}
        }
    }

    c.findings
        .sort_by_key(|f| (f.line.unwrap_or(0), f.severity));
    c.findings
}
