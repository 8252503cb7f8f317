//! What Runway accepts as an app component: a WebAssembly *component* (not a
//! core module) that exports `wasi:http/incoming-handler@0.2.x` and imports
//! nothing beyond what the host provides.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Why a component cannot run on Runway. Each message says what is wrong and
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("the file is not a WebAssembly binary (it does not start with \\0asm)")]
    NotWasm,
    #[error(
        "the file is a core WebAssembly module, not a component; build it for the \
         wasm32-wasip2 target (cargo build --target wasm32-wasip2) or wrap it with \
         `wasm-tools component new`"
    )]
    CoreModule,
    #[error(
        "the component does not export wasi:http/incoming-handler@0.2.x (it exports: {exports}); \
         an app must implement the wasi:http/proxy world"
    )]
    MissingHandler { exports: String },
    #[error(
        "the component imports interfaces Runway does not provide: {}; Runway provides \
         wasi:http, wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem, wasi:sockets \
         (all @0.2.x), wasi:config/store@0.2.0-draft, wasi:keyvalue/{{store,atomics,batch}}@0.2.0-draft \
         runway:jobs/queue@0.1.0 and runway:email/outbox@0.1.0",
        unsupported.join(", ")
    )]
    UnsupportedImports { unsupported: Vec<String> },
    #[error("the component is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error("the component's imports do not match what Runway provides: {0}")]
    Link(String),
}

/// What a valid component imports and exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReport {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Families provided at any 0.2.x version (wasmtime links a newer minor
/// patch level of an import against the version it implements).
const WASI_02_FAMILIES: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/types@",
    "wasi:http/outgoing-handler@",
];

/// Draft interfaces provided at exactly this version: pre-release versions
/// must match exactly.
const EXACT: &[&str] = &[
    "wasi:config/store@0.2.0-draft",
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
    "runway:jobs/queue@0.1.0",
    "runway:email/outbox@0.1.0",
];

pub(crate) fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(ComponentError::CoreModule),
        Some([0, b'a', b's', b'm', ..]) => Err(ComponentError::Invalid(
            "unknown WebAssembly binary version or layer".into(),
        )),
        _ => Err(ComponentError::NotWasm),
    }
}

fn is_provided(import: &str) -> bool {
    if EXACT.contains(&import) {
        return true;
    }
    WASI_02_FAMILIES.iter().any(|family| {
        import.starts_with(family)
            && import
                .rsplit_once('@')
                .is_some_and(|(_, version)| version.starts_with("0.2."))
    })
}

pub(crate) fn check_world(
    engine: &Engine,
    component: &Component,
) -> Result<ComponentReport, ComponentError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();

    if !exports
        .iter()
        .any(|e| e.starts_with("wasi:http/incoming-handler@0.2."))
    {
        let exports = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(ComponentError::MissingHandler { exports });
    }
    let unsupported: Vec<String> = imports
        .iter()
        .filter(|i| !is_provided(i))
        .cloned()
        .collect();
    if !unsupported.is_empty() {
        return Err(ComponentError::UnsupportedImports { unsupported });
    }
    Ok(ComponentReport { imports, exports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(ComponentError::CoreModule)
        ));
        assert!(matches!(check_header(b"\0asm\x0d\0\x01\0"), Ok(())));
        assert!(matches!(
            check_header(b"PK\x03\x04zip!"),
            Err(ComponentError::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0as"),
            Err(ComponentError::NotWasm)
        ));
    }

    #[test]
    fn provided_imports() {
        assert!(is_provided("wasi:http/types@0.2.12"));
        assert!(is_provided("wasi:cli/stdout@0.2.0"));
        assert!(is_provided("wasi:keyvalue/store@0.2.0-draft"));
        assert!(!is_provided("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(is_provided("runway:jobs/queue@0.1.0"));
        assert!(is_provided("runway:email/outbox@0.1.0"));
        assert!(!is_provided("wasi:http/types@0.3.0"));
        assert!(!is_provided("test:extra/secret-sauce"));
        assert!(!is_provided("wasi:http/incoming-handler@0.2.0"));
    }
}
