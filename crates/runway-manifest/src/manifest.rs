//! [`Manifest`]: the parsed, fully validated `runway.toml`.
//!
//! Parsing walks toml's spanned document tree ([`toml::de::DeTable`]) by hand
//! instead of deriving `Deserialize`: that is what lets every error name the
//! exact key, show the offending value, point at its line and suggest a fix, and
//! lets unknown keys (typos) be reported with a "did you mean" instead of being
//! dropped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;

use serde::Serialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::ManifestError;
use crate::name::AppName;
use crate::origin::AllowedOrigin;
use crate::paths;
use semver::{Version, VersionReq};

/// A validated `runway.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub app: AppInfo,
    pub component: ComponentInfo,
    pub static_files: Option<StaticInfo>,
    /// Keyed by property name (`[A-Za-z_][A-Za-z0-9_.-]*`, at most 64 chars).
    pub properties: BTreeMap<String, Property>,
    /// Timer names are unique.
    pub timers: Vec<Timer>,
    pub dependencies: BTreeMap<AppName, VersionReq>,
    pub outbound: Outbound,
    pub limits: Limits,
}

/// `[app]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    pub name: AppName,
    pub version: Version,
    pub description: Option<String>,
}

/// `[component]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// Normalised relative path inside the app directory (`/`-separated, no `..`).
    pub path: String,
}

/// `[static]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticInfo {
    /// Normalised relative directory inside the app directory.
    pub dir: String,
}

/// `[properties.<name>]`: a configuration value the environment supplies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Property {
    pub kind: PropertyKind,
    /// Canonical string form (`"42"`, `"true"`), already checked against `kind`.
    pub default: Option<String>,
    /// The app cannot run until a value is set. A default satisfies it.
    pub required: bool,
    /// The value is hidden in listings and logs.
    pub secret: bool,
    pub description: Option<String>,
}

/// The type of a property (TOML key `type`; `"string"` when omitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    String,
    Int,
    Bool,
    Url,
}

impl PropertyKind {
    const ALL: [PropertyKind; 4] = [
        PropertyKind::String,
        PropertyKind::Int,
        PropertyKind::Bool,
        PropertyKind::Url,
    ];

    /// Checks a value given as text (manifest default, `runway config set`, API).
    /// The error says what is expected, e.g. "expected an integer like 42".
    pub fn check(&self, value: &str) -> Result<(), String> {
        let ok = match self {
            PropertyKind::String => true,
            PropertyKind::Int => value.parse::<i64>().is_ok(),
            PropertyKind::Bool => value == "true" || value == "false",
            PropertyKind::Url => url::Url::parse(value).is_ok_and(|u| u.has_host()),
        };
        if ok {
            Ok(())
        } else {
            Err(self.expected().to_owned())
        }
    }

    /// The TOML spelling: `string`, `int`, `bool` or `url`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PropertyKind::String => "string",
            PropertyKind::Int => "int",
            PropertyKind::Bool => "bool",
            PropertyKind::Url => "url",
        }
    }

    fn from_name(s: &str) -> Option<PropertyKind> {
        PropertyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn expected(&self) -> &'static str {
        match self {
            PropertyKind::String => "expected a string in quotes",
            PropertyKind::Int => "expected an integer like 42",
            PropertyKind::Bool => "expected true or false",
            PropertyKind::Url => "expected an absolute URL like https://example.com",
        }
    }

    /// Canonical text of a valid value: integers lose `+` and leading zeros so
    /// that equal values compare equal as strings.
    fn canonical(&self, value: &str) -> String {
        match self {
            PropertyKind::Int => value
                .parse::<i64>()
                .map_or_else(|_| value.to_owned(), |i| i.to_string()),
            _ => value.to_owned(),
        }
    }
}

impl fmt::Display for PropertyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[timers]]`: a path the platform calls on a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timer {
    pub name: String,
    /// Cron expression (5 fields, or 6 with seconds first), validated with croner.
    pub schedule: String,
    /// Request path inside the app, starts with `/`.
    pub path: String,
    /// 1..=3600 seconds (`timeout = 600` or `timeout = "10m"`).
    pub timeout_secs: Option<u64>,
}

/// Largest `runway.toml` accepted, in bytes: checked before parsing, so a
/// huge manifest costs nothing.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;
/// Most `[properties.*]` a manifest may declare.
pub const MAX_PROPERTIES: usize = 256;

/// Longest timer timeout: timers are HTTP requests, not batch jobs.
pub const MAX_TIMER_TIMEOUT_SECS: u64 = 3600;

/// `[outbound]`: origins the app may call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outbound {
    pub allow: Vec<AllowedOrigin>,
}

impl Outbound {
    /// Whether any allowed origin covers `scheme://host:port`.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allow.iter().any(|o| o.allows(scheme, host, port))
    }
}

/// `[limits]`: each narrows the environment's bound; `None` keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_body_bytes: Option<u64>,
    /// Most requests of this app in flight at once on a front-end.
    pub concurrency: Option<u32>,
}

/// Largest `[limits] concurrency` a manifest may ask for.
pub const MAX_CONCURRENCY: u32 = 100_000;

impl Manifest {
    /// Parses and validates `text`; `file` is only used in error messages.
    /// Text larger than [`MAX_MANIFEST_BYTES`] is refused before parsing.
    pub fn parse(text: &str, file: &str) -> Result<Manifest, ManifestError> {
        let cx = Cx { text, file };
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(cx.err(
                None,
                "",
                format!(
                    "the manifest is {} bytes, more than the limit of {MAX_MANIFEST_BYTES} bytes; \
                     keep data out of runway.toml (put files under [static])",
                    text.len()
                ),
            ));
        }
        let root = DeTable::parse(text).map_err(|e| {
            // toml's messages do not quote the offending text ("duplicate key"),
            // so show it when it is short enough to help.
            let at = e
                .span()
                .and_then(|s| text.get(s))
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= 40 && !t.contains('\n'))
                .map(|t| format!(" at `{t}`"))
                .unwrap_or_default();
            cx.err(
                e.span(),
                "",
                format!(
                    "invalid TOML{at}: {}; fix the syntax (see https://toml.io)",
                    e.message().trim()
                ),
            )
        })?;
        let root = root.get_ref();
        cx.unknown_keys(root, "", TOP_KEYS)?;

        let app = cx.app(root.get("app"))?;
        let component = cx.component(root.get("component"), &app.name)?;
        let static_files = root.get("static").map(|v| cx.static_info(v)).transpose()?;
        let properties = match root.get("properties") {
            Some(v) => cx.properties(v)?,
            None => BTreeMap::new(),
        };
        let timers = match root.get("timers") {
            Some(v) => cx.timers(v)?,
            None => Vec::new(),
        };
        let dependencies = match root.get("dependencies") {
            Some(v) => cx.dependencies(v, &app.name)?,
            None => BTreeMap::new(),
        };
        let outbound = match root.get("outbound") {
            Some(v) => cx.outbound(v)?,
            None => Outbound::default(),
        };
        let limits = match root.get("limits") {
            Some(v) => cx.limits(v)?,
            None => Limits::default(),
        };
        Ok(Manifest {
            app,
            component,
            static_files,
            properties,
            timers,
            dependencies,
            outbound,
            limits,
        })
    }
}

const TOP_KEYS: &[&str] = &[
    "app",
    "component",
    "static",
    "properties",
    "timers",
    "dependencies",
    "outbound",
    "limits",
];
const PROPERTY_NAME_MAX: usize = 64;
const TIMER_NAME_MAX: usize = 64;

type Val<'i> = Spanned<DeValue<'i>>;
type Res<T> = Result<T, ManifestError>;

/// Parsing context: the source text (for line numbers) and the file name.
struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Cx<'_> {
    fn err(&self, span: Option<Range<usize>>, key: &str, message: String) -> ManifestError {
        ManifestError::new(self.text, self.file, span, key.to_owned(), message)
    }

    /// `{key} = {value}: {problem_and_fix}` at the value's line.
    fn bad_value(
        &self,
        v: &Val<'_>,
        key: &str,
        problem_and_fix: impl fmt::Display,
    ) -> ManifestError {
        self.err(
            Some(v.span()),
            key,
            format!("{key} = {}: {problem_and_fix}", render(v.get_ref())),
        )
    }

    /// `{key}: {problem_and_fix}` at the key's line (for problems with a key itself).
    fn bad_key(
        &self,
        k: &Spanned<std::borrow::Cow<'_, str>>,
        key: &str,
        problem_and_fix: impl fmt::Display,
    ) -> ManifestError {
        self.err(Some(k.span()), key, format!("{key}: {problem_and_fix}"))
    }

    fn missing(&self, key: &str, fix: &str) -> ManifestError {
        self.err(None, key, format!("missing key {key}; {fix}"))
    }

    fn wrong_type(&self, v: &Val<'_>, key: &str, expected: &str, fix: &str) -> ManifestError {
        self.bad_value(
            v,
            key,
            format!("expected {expected}, found {}; {fix}", article(v.get_ref())),
        )
    }

    /// Reports the first (in file order) key of `t` not in `allowed`.
    fn unknown_keys(&self, t: &DeTable<'_>, prefix: &str, allowed: &[&str]) -> Res<()> {
        let first = t
            .keys()
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|k| k.span().start);
        let Some(k) = first else { return Ok(()) };
        let name: &str = k.get_ref();
        let full = join(prefix, name);
        let best = allowed.iter().map(|a| (edit_distance(name, a), *a)).min();
        let hint = match best {
            Some((d, a)) if d <= 2 => format!("did you mean `{a}`?"),
            _ => format!(
                "allowed keys{} are {}",
                if prefix.is_empty() {
                    String::new()
                } else {
                    format!(" in {prefix}")
                },
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Err(self.err(Some(k.span()), &full, format!("unknown key {full}; {hint}")))
    }

    fn table<'v, 'i>(&self, v: &'v Val<'i>, key: &str, fix: &str) -> Res<&'v DeTable<'i>> {
        v.get_ref()
            .as_table()
            .ok_or_else(|| self.wrong_type(v, key, "a table", fix))
    }

    /// A string without NUL characters (a database column of the catalog
    /// could not hold it on every backend).
    fn string<'v>(&self, v: &'v Val<'_>, key: &str) -> Res<&'v str> {
        let s = v.get_ref().as_str().ok_or_else(|| {
            self.wrong_type(v, key, "a string", "write the value in double quotes")
        })?;
        if s.contains('\0') {
            return Err(self.bad_value(v, key, "contains a NUL character (\\u0000); remove it"));
        }
        Ok(s)
    }

    fn opt_string(&self, t: &DeTable<'_>, prefix: &str, name: &str) -> Res<Option<String>> {
        t.get(name)
            .map(|v| self.string(v, &join(prefix, name)).map(str::to_owned))
            .transpose()
    }

    fn opt_bool(&self, t: &DeTable<'_>, prefix: &str, name: &str) -> Res<Option<bool>> {
        t.get(name)
            .map(|v| {
                v.get_ref().as_bool().ok_or_else(|| {
                    self.wrong_type(
                        v,
                        &join(prefix, name),
                        "true or false",
                        "write true or false without quotes",
                    )
                })
            })
            .transpose()
    }

    /// An integer in `min..=max`; `what` completes "must be …", `fix` follows.
    fn int_in(
        &self,
        v: &Val<'_>,
        key: &str,
        min: u64,
        max: u64,
        what: &str,
        fix: &str,
    ) -> Res<u64> {
        let Some(i) = int_value(v.get_ref()) else {
            return Err(self.wrong_type(v, key, "an integer", fix));
        };
        match u64::try_from(i) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.bad_value(v, key, format!("{what}; {fix}"))),
        }
    }

    fn app(&self, v: Option<&Val<'_>>) -> Res<AppInfo> {
        const FIX: &str = "add [app] with name = \"my-app\" and version = \"0.1.0\"";
        let Some(v) = v else {
            return Err(self.err(None, "app", format!("missing table [app]; {FIX}")));
        };
        let t = self.table(v, "app", FIX)?;
        self.unknown_keys(t, "app", &["name", "version", "description"])?;

        let name_v = t
            .get("name")
            .ok_or_else(|| self.missing("app.name", "add `name = \"my-app\"` under [app]"))?;
        let name = AppName::parse(self.string(name_v, "app.name")?)
            .map_err(|e| self.bad_value(name_v, "app.name", e))?;

        let version_v = t
            .get("version")
            .ok_or_else(|| self.missing("app.version", "add `version = \"0.1.0\"` under [app]"))?;
        let version = Version::parse(self.string(version_v, "app.version")?).map_err(|e| {
            self.bad_value(
                version_v,
                "app.version",
                format!("not a semantic version ({e}); use three numbers like \"1.0.0\""),
            )
        })?;
        let description = self.opt_string(t, "app", "description")?;
        Ok(AppInfo {
            name,
            version,
            description,
        })
    }

    fn component(&self, v: Option<&Val<'_>>, name: &AppName) -> Res<ComponentInfo> {
        // Cargo names the artifact after the crate with '-' turned into '_'.
        let example = format!(
            "path = \"target/wasm32-wasip2/release/{}.wasm\"",
            name.as_str().replace('-', "_")
        );
        let Some(v) = v else {
            return Err(self.err(
                None,
                "component",
                format!("missing table [component]; add [component] with {example}"),
            ));
        };
        let t = self.table(v, "component", &format!("write [component] with {example}"))?;
        self.unknown_keys(t, "component", &["path"])?;
        let path_v = t.get("path").ok_or_else(|| {
            self.missing(
                "component.path",
                &format!("add `{example}` under [component]"),
            )
        })?;
        let path = paths::normalize(self.string(path_v, "component.path")?)
            .map_err(|e| self.bad_value(path_v, "component.path", e))?;
        Ok(ComponentInfo { path })
    }

    fn static_info(&self, v: &Val<'_>) -> Res<StaticInfo> {
        let t = self.table(v, "static", "write [static] with dir = \"public\"")?;
        self.unknown_keys(t, "static", &["dir"])?;
        let dir_v = t.get("dir").ok_or_else(|| {
            self.missing(
                "static.dir",
                "add `dir = \"public\"` under [static], or remove [static]",
            )
        })?;
        let dir = paths::normalize(self.string(dir_v, "static.dir")?)
            .map_err(|e| self.bad_value(dir_v, "static.dir", e))?;
        Ok(StaticInfo { dir })
    }

    fn properties(&self, v: &Val<'_>) -> Res<BTreeMap<String, Property>> {
        let t = self.table(
            v,
            "properties",
            "declare each property as a table, like [properties.greeting] with type = \"string\"",
        )?;
        if t.len() > MAX_PROPERTIES {
            return Err(self.err(
                Some(v.span()),
                "properties",
                format!(
                    "properties: {} properties declared, more than the limit of {MAX_PROPERTIES}; \
                     group related settings into one property",
                    t.len()
                ),
            ));
        }
        let mut entries: Vec<_> = t.iter().collect();
        // File order, so the first error reported is the first one in the file.
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let name: &str = k.get_ref();
            let key = join("properties", name);
            check_property_name(name).map_err(|e| self.bad_key(k, &key, e))?;
            let fix = format!("declare it as a table: [properties.{name}] with type = \"string\"");
            let pt = self.table(v, &key, &fix)?;
            self.unknown_keys(
                pt,
                &key,
                &["type", "default", "required", "secret", "description"],
            )?;
            let kind = match pt.get("type") {
                None => PropertyKind::String,
                Some(tv) => {
                    let tkey = join(&key, "type");
                    let s = self.string(tv, &tkey)?;
                    PropertyKind::from_name(s).ok_or_else(|| {
                        self.bad_value(
                            tv,
                            &tkey,
                            "unknown property type; use one of \"string\", \"int\", \"bool\", \"url\"",
                        )
                    })?
                }
            };
            let default = pt
                .get("default")
                .map(|dv| self.property_default(dv, &join(&key, "default"), kind))
                .transpose()?;
            out.insert(
                name.to_owned(),
                Property {
                    kind,
                    default,
                    required: self.opt_bool(pt, &key, "required")?.unwrap_or(false),
                    secret: self.opt_bool(pt, &key, "secret")?.unwrap_or(false),
                    description: self.opt_string(pt, &key, "description")?,
                },
            );
        }
        Ok(out)
    }

    /// A default may be written as a TOML string, or as an integer / boolean when
    /// the type is int / bool; it is stored in canonical string form.
    fn property_default(&self, v: &Val<'_>, key: &str, kind: PropertyKind) -> Res<String> {
        let mismatch = |expected: &str| {
            self.bad_value(
                v,
                key,
                format!(
                    "{expected} for a property of type {kind}; fix the default or change the type"
                ),
            )
        };
        match (v.get_ref(), kind) {
            (DeValue::String(s), _) => match kind.check(s) {
                Ok(()) => Ok(kind.canonical(s)),
                Err(expected) => Err(mismatch(&expected)),
            },
            (DeValue::Integer(_), PropertyKind::Int) => match int_value(v.get_ref()) {
                Some(i) => Ok(i.to_string()),
                None => Err(mismatch(kind.expected())),
            },
            (DeValue::Boolean(b), PropertyKind::Bool) => Ok(b.to_string()),
            // A number for a string property is almost always meant as text, but
            // guessing the spelling (e.g. of 1e3) is worse than asking for quotes.
            (
                DeValue::Integer(_) | DeValue::Boolean(_) | DeValue::Float(_),
                PropertyKind::String,
            ) => Err(self.bad_value(
                v,
                key,
                format!(
                    "a property of type string needs a quoted default; write default = \"{}\"",
                    render(v.get_ref())
                ),
            )),
            _ => Err(mismatch(kind.expected())),
        }
    }

    fn timers(&self, v: &Val<'_>) -> Res<Vec<Timer>> {
        const FIX: &str = "write each timer as a [[timers]] table with name, schedule and path";
        let Some(items) = v.get_ref().as_array() else {
            return Err(self.wrong_type(v, "timers", "an array of tables", FIX));
        };
        let mut out = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("timers[{i}]");
            let t = self.table(item, &key, FIX)?;
            self.unknown_keys(t, &key, &["name", "schedule", "path", "timeout"])?;

            let name_key = format!("{key}.name");
            let name_v = t.get("name").ok_or_else(|| {
                self.missing(&name_key, &format!("add `name = \"cleanup\"` to {key}"))
            })?;
            let name = self.string(name_v, &name_key)?;
            check_timer_name(name).map_err(|e| self.bad_value(name_v, &name_key, e))?;
            if let Some(prev) = seen.insert(name.to_owned(), i) {
                return Err(self.bad_value(
                    name_v,
                    &name_key,
                    format!("duplicate timer name (also used by timers[{prev}]); give each timer a unique name"),
                ));
            }

            let sched_key = format!("{key}.schedule");
            let sched_v = t.get("schedule").ok_or_else(|| {
                self.missing(
                    &sched_key,
                    &format!("add `schedule = \"0 3 * * *\"` (cron) to {key}"),
                )
            })?;
            let schedule = self.string(sched_v, &sched_key)?;
            check_cron(schedule).map_err(|e| self.bad_value(sched_v, &sched_key, e))?;

            let path_key = format!("{key}.path");
            let path_v = t.get("path").ok_or_else(|| {
                self.missing(
                    &path_key,
                    &format!("add `path = \"/tasks/{name}\"` to {key}"),
                )
            })?;
            let path = self.string(path_v, &path_key)?;
            check_request_path(path).map_err(|e| self.bad_value(path_v, &path_key, e))?;

            let timeout_secs = t
                .get("timeout")
                .map(|tv| {
                    const WHAT: &str = "the timeout must be between 1 second and 1 hour";
                    const FIX: &str = "use a value like 60 (seconds) or \"10m\", or remove it to use the environment's timeout";
                    let timeout_key = format!("{key}.timeout");
                    match tv.get_ref().as_str() {
                        Some(text) => {
                            let secs = crate::schedule::parse_timeout(text)
                                .map_err(|e| self.bad_value(tv, &timeout_key, e))?;
                            if (1..=MAX_TIMER_TIMEOUT_SECS).contains(&secs) {
                                Ok(secs)
                            } else {
                                Err(self.bad_value(tv, &timeout_key, format!("{WHAT}; {FIX}")))
                            }
                        }
                        None => self.int_in(tv, &timeout_key, 1, MAX_TIMER_TIMEOUT_SECS, WHAT, FIX),
                    }
                })
                .transpose()?;
            out.push(Timer {
                name: name.to_owned(),
                schedule: schedule.to_owned(),
                path: path.to_owned(),
                timeout_secs,
            });
        }
        Ok(out)
    }

    fn dependencies(&self, v: &Val<'_>, me: &AppName) -> Res<BTreeMap<AppName, VersionReq>> {
        let t = self.table(
            v,
            "dependencies",
            "write [dependencies] with lines like auth = \"^1.2\"",
        )?;
        let mut entries: Vec<_> = t.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let key = join("dependencies", k.get_ref());
            let name = AppName::parse(k.get_ref())
                .map_err(|e| self.bad_key(k, &key, format!("not a valid app name: {e}")))?;
            if &name == me {
                return Err(self.bad_key(
                    k,
                    &key,
                    "an app cannot depend on itself; remove this line",
                ));
            }
            let req = VersionReq::parse(self.string(v, &key)?).map_err(|e| {
                self.bad_value(
                    v,
                    &key,
                    format!(
                        "not a version requirement ({e}); use something like \"^1.2\" or \"=1.2.3\""
                    ),
                )
            })?;
            out.insert(name, req);
        }
        Ok(out)
    }

    fn outbound(&self, v: &Val<'_>) -> Res<Outbound> {
        const FIX: &str = "write [outbound] with allow = [\"https://api.example.com\"]";
        let t = self.table(v, "outbound", FIX)?;
        self.unknown_keys(t, "outbound", &["allow"])?;
        let mut allow = Vec::new();
        if let Some(av) = t.get("allow") {
            let Some(items) = av.get_ref().as_array() else {
                return Err(self.wrong_type(av, "outbound.allow", "an array of strings", FIX));
            };
            for (i, item) in items.iter().enumerate() {
                let key = format!("outbound.allow[{i}]");
                let origin = AllowedOrigin::parse(self.string(item, &key)?)
                    .map_err(|e| self.bad_value(item, &key, e))?;
                if !allow.contains(&origin) {
                    allow.push(origin);
                }
            }
        }
        Ok(Outbound { allow })
    }

    fn limits(&self, v: &Val<'_>) -> Res<Limits> {
        let t = self.table(
            v,
            "limits",
            "write [limits] with timeout_ms, memory_mib, max_body_bytes or concurrency",
        )?;
        self.unknown_keys(
            t,
            "limits",
            &["timeout_ms", "memory_mib", "max_body_bytes", "concurrency"],
        )?;
        let get = |name: &str, example: &str| {
            t.get(name)
                .map(|lv| {
                    self.int_in(
                        lv,
                        &join("limits", name),
                        1,
                        i64::MAX as u64,
                        "must be a positive integer",
                        &format!("use a value like {example}, or remove it to use the environment's limit"),
                    )
                })
                .transpose()
        };
        Ok(Limits {
            timeout_ms: get("timeout_ms", "30000")?,
            memory_mib: get("memory_mib", "128")?,
            max_body_bytes: get("max_body_bytes", "1048576")?,
            concurrency: t
                .get("concurrency")
                .map(|lv| {
                    self.int_in(
                        lv,
                        "limits.concurrency",
                        1,
                        u64::from(MAX_CONCURRENCY),
                        &format!("must be an integer from 1 to {MAX_CONCURRENCY}"),
                        "use a value like 10, or remove it to use the environment's --app-concurrency",
                    )
                    .map(|n| n as u32)
                })
                .transpose()?,
        })
    }
}

fn check_property_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= PROPERTY_NAME_MAX {
        Ok(())
    } else {
        Err(format!(
            "property names start with a letter or '_' and contain only letters, digits, '_', '.' and '-' (at most {PROPERTY_NAME_MAX}); rename it, e.g. \"api_key\""
        ))
    }
}

fn check_timer_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= TIMER_NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "timer names contain only letters, digits, '_' and '-' (1 to {TIMER_NAME_MAX}); use something like \"cleanup\""
        ))
    }
}

fn check_cron(schedule: &str) -> Result<(), String> {
    crate::schedule::Schedule::parse(schedule).map(|_| ())
}

fn check_request_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "timer paths must start with '/'; use \"/{}\"",
            path.trim_start_matches('/')
        ));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(
            "a request path cannot contain spaces, control characters or '#'; percent-encode them"
                .into(),
        );
    }
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == "." || segment.contains('\\'))
    {
        return Err(
            "a timer path must stay inside the app (no '.' or '..' segments, no backslash); \
             write the path as the app sees it, like \"/tasks/report\" for POST /{app}/tasks/report"
                .into(),
        );
    }
    Ok(())
}

/// A TOML integer as i64 (toml keeps the digits and radix, not the number).
fn int_value(v: &DeValue<'_>) -> Option<i64> {
    let i = v.as_integer()?;
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// `prefix.name`, quoting `name` when it is not a bare TOML key or contains '.'.
fn join(prefix: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let seg = if bare {
        name.to_owned()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"))
    };
    if prefix.is_empty() {
        seg
    } else {
        format!("{prefix}.{seg}")
    }
}

/// A value as it would be written in TOML, shortened for one-line messages.
fn render(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => {
            let short: String = s.chars().take(80).collect();
            let quoted = serde_json::to_string(&short).unwrap_or_else(|_| format!("{short:?}"));
            if short.len() < s.len() {
                format!("{}…\"", &quoted[..quoted.len() - 1])
            } else {
                quoted
            }
        }
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "[…]".to_owned(),
        DeValue::Table(_) => "{…}".to_owned(),
    }
}

fn article(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Levenshtein distance, for "did you mean" on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_kind_check() {
        use PropertyKind::*;
        assert!(String.check("anything at all").is_ok());
        assert!(Int.check("42").is_ok());
        assert!(Int.check("-7").is_ok());
        assert_eq!(Int.check("abc").unwrap_err(), "expected an integer like 42");
        assert!(Int.check("4.2").is_err());
        assert!(Int.check("").is_err());
        assert!(Bool.check("true").is_ok());
        assert!(Bool.check("false").is_ok());
        assert_eq!(Bool.check("yes").unwrap_err(), "expected true or false");
        assert!(Bool.check("True").is_err());
        assert!(Url.check("https://example.com/x").is_ok());
        assert!(Url.check("postgres://db:5432/app").is_ok());
        assert!(Url.check("example.com").is_err());
        assert!(Url.check("mailto:x@example.com").is_err());
        assert_eq!(Int.as_str(), "int");
        assert_eq!(PropertyKind::from_name("url"), Some(Url));
        assert_eq!(Int.canonical("+042"), "42");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("nmae", "name"), 2);
        assert_eq!(edit_distance("name", "name"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("compnent", "component"), 1);
    }

    #[test]
    fn cron_rules() {
        for ok in ["0 3 * * *", "*/5 * * * *", "30 0 3 * * MON-FRI", "@daily"] {
            check_cron(ok).unwrap();
        }
        for bad in ["", "every day", "0 3 * *", "0 0 3 * * * 2030", "61 * * * *"] {
            assert!(check_cron(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_quoted_when_needed() {
        assert_eq!(join("properties", "port"), "properties.port");
        assert_eq!(join("properties", "db.url"), "properties.\"db.url\"");
        assert_eq!(join("", "app"), "app");
    }
}
