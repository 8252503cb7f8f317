//! `runway-manifest`: the app manifest (`runway.toml`), the package format (`.rwp`)
//! and the validated newtypes every other crate speaks in ([`AppName`], [`Digest`]).
//!
//! Everything here follows "parse, don't validate": once you hold a [`Manifest`],
//! an [`AppName`] or a [`Package`], its invariants hold, so no other crate has to
//! re-check them. The crate does no I/O beyond reading an app directory
//! ([`Package::from_dir`]) or bytes handed to it.
//!
//! # `runway.toml` at a glance
//!
//! ```toml
//! [app]
//! name = "notes"            # AppName rules
//! version = "1.2.0"         # semver
//! description = "optional"
//!
//! [component]
//! path = "target/wasm32-wasip2/release/notes.wasm"   # relative, inside the app dir
//!
//! [static]                  # optional
//! dir = "public"
//!
//! [properties.greeting]     # type defaults to "string"
//! type = "string"           # string | int | bool | url
//! default = "hello"
//! required = false
//! secret = false
//! description = "optional"
//!
//! [[timers]]
//! name = "cleanup"
//! schedule = "0 3 * * *"    # cron, 5 fields (or 6 with seconds first)
//! path = "/tasks/cleanup"
//! timeout = "10m"           # 1 s..1 h, seconds (60) or a duration ("90s", "10m"), optional
//!
//! [dependencies]
//! auth = "^1.2"
//!
//! [outbound]
//! allow = ["https://api.example.com"]
//!
//! [limits]                  # all optional, each > 0; may only narrow the environment's
//! timeout_ms = 30000
//! memory_mib = 128
//! max_body_bytes = 1048576
//! concurrency = 10          # requests in flight at once per front-end
//! ```
//!
//! Unknown keys are errors, so a typo never silently drops a setting. A manifest
//! is at most [`MAX_MANIFEST_BYTES`] (64 KiB, refused before parsing) and declares
//! at most [`MAX_PROPERTIES`] (256) properties; strings may not contain NUL.

mod digest;
mod error;
mod manifest;
mod name;
mod origin;
mod package;
mod paths;
mod schedule;

pub use chrono_tz::Tz;
pub use digest::{Digest, DigestError};
pub use error::ManifestError;
pub use manifest::{
    AppInfo, ComponentInfo, Limits, MAX_MANIFEST_BYTES, MAX_PROPERTIES, MAX_TIMER_TIMEOUT_SECS,
    Manifest, Outbound, Property, PropertyKind, StaticInfo, Timer,
};
pub use name::{AppName, MAX_APP_NAME_LEN, NameError};
pub use origin::AllowedOrigin;
pub use package::{INDEX_ENTRY, MAX_STATIC_FILES, PACKAGE_FORMAT, Package, PackageError};
pub use schedule::{DEFAULT_TIME_ZONE, Schedule, parse_time_zone, parse_timeout};
pub use semver::{Version, VersionReq};
