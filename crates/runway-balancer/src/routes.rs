//! Which pool of upstreams a request goes to: routes by host and path
//! prefix (reverse-proxy mode), or the one pool of a plain balancer.
//!
//! A request's host is its `Host` header (or the authority of an HTTP/2
//! request), without port, compared without case. A matching route of that
//! host wins over any route without a host; among equals, the longest path
//! prefix that matches at a segment boundary. Configuration forbids two
//! routes with the same host and prefix, so the choice is never ambiguous.

use std::sync::Arc;

use crate::pool::Pool;

/// One route, resolved to its pool.
pub(crate) struct Route {
    pub host: Option<String>,
    pub prefix: String,
    pub pool: Arc<Pool>,
}

/// The routes of one balancer, most specific first.
pub(crate) struct RouteTable {
    routes: Vec<Route>,
    /// One route for every host and path: no need to look at the request.
    catch_all: Option<Arc<Pool>>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        // Hosts first, then longer prefixes: the first match is the best.
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.prefix.len().cmp(&a.prefix.len()))
        });
        let catch_all = match routes.as_slice() {
            [only] if only.host.is_none() && only.prefix == "/" => Some(only.pool.clone()),
            _ => None,
        };
        RouteTable { routes, catch_all }
    }

    /// The pool for a request to `host` (as sent, maybe with a port) and
    /// `path`; `None` when no route matches.
    pub fn pick(&self, host: Option<&str>, path: &str) -> Option<&Arc<Pool>> {
        if let Some(pool) = &self.catch_all {
            return Some(pool);
        }
        let host = host.map(strip_port);
        self.routes
            .iter()
            .filter(|r| match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                (Some(_), None) => false,
            })
            .find(|r| prefix_matches(&r.prefix, path))
            .map(|r| &r.pool)
    }
}

/// `www.example.com:8443` → `www.example.com`; `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

/// Whether `path` is `prefix` or below it (`/app` matches `/app`, `/app/`,
/// `/app/x` and `/app?q`, not `/apple`).
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    fn pool() -> Arc<Pool> {
        Arc::new(Pool::new(Policy::RoundRobin, 50))
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/app", "/app"));
        assert!(prefix_matches("/app", "/app/x"));
        assert!(!prefix_matches("/app", "/apple"));
        assert!(!prefix_matches("/app", "/"));
    }

    #[test]
    fn host_routes_win_then_the_longest_prefix() {
        let (any_root, any_app, host_root) = (pool(), pool(), pool());
        let table = RouteTable::new(vec![
            Route {
                host: None,
                prefix: "/".into(),
                pool: any_root.clone(),
            },
            Route {
                host: None,
                prefix: "/app".into(),
                pool: any_app.clone(),
            },
            Route {
                host: Some("intranet.example.com".into()),
                prefix: "/".into(),
                pool: host_root.clone(),
            },
        ]);
        let pick = |host, path| table.pick(host, path).map(Arc::as_ptr);
        assert_eq!(
            pick(Some("www.example.com"), "/x"),
            Some(Arc::as_ptr(&any_root))
        );
        assert_eq!(
            pick(Some("www.example.com"), "/app/x"),
            Some(Arc::as_ptr(&any_app))
        );
        assert_eq!(
            pick(Some("INTRANET.example.com:8443"), "/app/x"),
            Some(Arc::as_ptr(&host_root))
        );
        assert_eq!(pick(None, "/apple"), Some(Arc::as_ptr(&any_root)));
    }

    #[test]
    fn no_route_no_pool() {
        let table = RouteTable::new(vec![Route {
            host: Some("a.test".into()),
            prefix: "/".into(),
            pool: pool(),
        }]);
        assert!(table.pick(Some("b.test"), "/").is_none());
        assert!(table.pick(None, "/").is_none());
    }
}
