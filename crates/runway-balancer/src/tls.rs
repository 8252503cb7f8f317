//! TLS termination: the certificates a balancer serves, chosen by SNI, and
//! their reload.
//!
//! Each configured certificate is a PEM chain file and a PEM key file. At
//! load, every one is checked: both files readable, the chain holds at least
//! one certificate, the key is a private key that matches the leaf
//! certificate, the leaf is valid now (not expired, not yet to come), and it
//! names at least one DNS host (subjectAltName). A certificate serves the
//! hosts it names (`*.example.com` serves one label under `example.com`);
//! a client that sends no SNI, or a name no certificate has, gets the first
//! certificate of the configuration.
//!
//! # Reload
//!
//! [`Certificates::reload`] (SIGHUP in `runway balancer serve`) loads every
//! file again and swaps the whole set at once (`ArcSwap`): handshakes that
//! start afterwards use the new set; established connections keep theirs and
//! are never dropped. If anything in the new set is wrong, the old set stays
//! in force and the error says why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode;

/// One `[[certificate]]`: where its chain and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM file: the server certificate first, then its intermediates.
    pub chain: PathBuf,
    /// PEM file: the private key of the server certificate (PKCS#8, PKCS#1
    /// or SEC1).
    pub key: PathBuf,
}

/// Why a certificate cannot be served: the file, what is wrong, the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateError {
    pub file: PathBuf,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for CertificateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate {}: {}; {}",
            self.file.display(),
            self.problem,
            self.fix
        )
    }
}

/// A loaded, checked certificate.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// Lower-case DNS names from subjectAltName.
    hosts: Vec<String>,
}

/// Every certificate in force, indexed by host.
#[derive(Debug)]
struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl CertSet {
    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = self.wildcard.get(parent)
        {
            return key.clone();
        }
        self.default.clone()
    }
}

/// The certificates of a balancer: the SNI resolver handshakes ask, and the
/// files to load again on reload.
pub struct Certificates {
    files: Vec<CertificateFiles>,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertSet>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The crypto provider of every TLS connection the balancer accepts.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Certificates {
    /// Loads and checks every certificate (see the module doc). `files` must
    /// not be empty.
    pub fn load(files: &[CertificateFiles]) -> Result<Certificates, CertificateError> {
        let provider = provider();
        let set = load_set(files, &provider, SystemTime::now())?;
        Ok(Certificates {
            files: files.to_vec(),
            provider,
            current: ArcSwap::from_pointee(set),
        })
    }

    /// Loads every file again and, if all are good, serves the new set from
    /// the next handshake on; otherwise keeps the old one. Returns how many
    /// certificates are in force.
    pub fn reload(&self) -> Result<usize, CertificateError> {
        let set = load_set(&self.files, &self.provider, SystemTime::now())?;
        self.current.store(Arc::new(set));
        Ok(self.files.len())
    }

    /// A rustls server configuration that picks from these certificates,
    /// offering HTTP/2 and HTTP/1.1 by ALPN.
    pub(crate) fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions");
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().pick(hello.server_name()))
    }
}

fn load_set(
    files: &[CertificateFiles],
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<CertSet, CertificateError> {
    let mut exact: HashMap<String, Arc<CertifiedKey>> = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    let mut default = None;
    for files in files {
        let loaded = load_one(files, provider, now)?;
        for host in &loaded.hosts {
            if let Some(first) = owners.get(host) {
                return Err(CertificateError {
                    file: files.chain.clone(),
                    problem: format!("names host {host}, which {} names too", first.display()),
                    fix: "give each host name to one certificate only (SNI picks by name)".into(),
                });
            }
            owners.insert(host.clone(), files.chain.clone());
            match host.strip_prefix("*.") {
                Some(parent) => wildcard.insert(parent.to_string(), loaded.key.clone()),
                None => exact.insert(host.clone(), loaded.key.clone()),
            };
        }
        default.get_or_insert(loaded.key);
    }
    let Some(default) = default else {
        return Err(CertificateError {
            file: PathBuf::new(),
            problem: "no certificate is configured".into(),
            fix: "add a [[certificate]] with chain and key".into(),
        });
    };
    Ok(CertSet {
        exact,
        wildcard,
        default,
    })
}

fn read_error(file: &Path, what: &str, error: impl std::fmt::Display) -> CertificateError {
    CertificateError {
        file: file.to_path_buf(),
        problem: format!("cannot read the {what}: {error}"),
        fix: format!("check the path and that the balancer may read it (a PEM {what} file)"),
    }
}

fn load_one(
    files: &CertificateFiles,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Loaded, CertificateError> {
    let chain_file = &files.chain;
    let key_file = &files.key;
    // Read first so that a missing file is "cannot read", not "no certificate".
    let chain_pem = std::fs::read(chain_file).map_err(|e| read_error(chain_file, "chain", e))?;
    let key_pem = std::fs::read(key_file).map_err(|e| read_error(key_file, "key", e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError {
            file: chain_file.clone(),
            problem: format!("is not a valid PEM certificate chain ({e})"),
            fix: "give the PEM file with -----BEGIN CERTIFICATE----- blocks, server certificate first".into(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(CertificateError {
            file: chain_file.clone(),
            problem: "holds no certificate".into(),
            fix: "give the PEM file with -----BEGIN CERTIFICATE----- blocks, server certificate first".into(),
        });
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertificateError {
        file: key_file.clone(),
        problem: format!("holds no private key ({e})"),
        fix: "give the PEM private key of the certificate (-----BEGIN PRIVATE KEY-----)".into(),
    })?;
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertificateError {
                file: key_file.clone(),
                problem: format!("is a private key the balancer cannot use ({e})"),
                fix: "use an RSA, ECDSA P-256/P-384 or Ed25519 key".into(),
            })?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(CertificateError {
                file: key_file.clone(),
                problem: format!("is not the key of the certificate in {}", chain_file.display()),
                fix: "give the key the certificate was issued for (the chain and key files are probably swapped with another pair)".into(),
            });
        }
    }
    let parsed = x509_cert::Certificate::from_der(leaf.as_ref()).map_err(|e| CertificateError {
        file: chain_file.clone(),
        problem: format!("has a first certificate that is not valid X.509 ({e})"),
        fix: "give the PEM file with the server certificate first".into(),
    })?;
    let validity = &parsed.tbs_certificate.validity;
    let not_after = validity.not_after.to_system_time();
    let not_before = validity.not_before.to_system_time();
    if not_after <= now {
        return Err(CertificateError {
            file: chain_file.clone(),
            problem: format!("expired on {}", validity.not_after.to_date_time()),
            fix: "renew it and put the new chain and key in place (then SIGHUP reloads them)"
                .into(),
        });
    }
    if not_before > now {
        return Err(CertificateError {
            file: chain_file.clone(),
            problem: format!("is not valid before {}", validity.not_before.to_date_time()),
            fix: "check the machine's clock, or use a certificate that is valid now".into(),
        });
    }
    let hosts = dns_names(&parsed);
    if hosts.is_empty() {
        return Err(CertificateError {
            file: chain_file.clone(),
            problem: "names no host (no DNS name in its subjectAltName)".into(),
            fix: "issue it for the host names clients use (subjectAltName=DNS:www.example.com)"
                .into(),
        });
    }
    Ok(Loaded {
        key: Arc::new(certified),
        hosts,
    })
}

/// The DNS names of a certificate's subjectAltName, lower-case.
fn dns_names(certificate: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::der::oid::AssociatedOid;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let mut names = Vec::new();
    for extension in certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == SubjectAltName::OID)
    {
        let Ok(san) = SubjectAltName::from_der(extension.extn_value.as_bytes()) else {
            continue;
        };
        for name in san.0 {
            if let GeneralName::DnsName(dns) = name {
                names.push(dns.to_string().to_ascii_lowercase());
            }
        }
    }
    names
}
