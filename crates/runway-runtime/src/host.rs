//! The per-request host state and Runway's own interfaces:
//! `wasi:config/store` (properties and platform facts) and `wasi:keyvalue`
//! (persisted by the platform, scoped to the app); `runway:jobs/queue` is in
//! `jobs.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::OutboundHooks;

pub(crate) mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "runway:app/imports",
        imports: { default: async },
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use generated::wasi::config::store as config;
use generated::wasi::keyvalue::{atomics, batch, store as kv};

/// A failure of the key-value backend, shown to the guest as
/// `error::other(message)`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// The key-value data of one app. Implementations are already scoped to the
/// app: a guest can only name a bucket and a key, never another app.
#[async_trait]
pub trait KeyValue: Send + Sync {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    async fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError>;
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError>;
    /// Keys after `cursor` in order, at most `limit`, and the cursor to pass
    /// next if more remain.
    async fn keys(
        &self,
        bucket: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<String>, Option<String>), KvError>;
    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError>;
}

/// How many keys one `list-keys` call returns.
const KEYS_PAGE: u32 = 500;
/// Largest value a guest may store: keeps one request from filling the catalog.
pub const MAX_VALUE_BYTES: usize = 4 << 20;
/// Bucket identifiers are short names, not data (bytes of UTF-8).
pub const MAX_BUCKET_NAME: usize = 128;
/// Keys are names, not data (bytes of UTF-8); the store refuses longer ones too.
pub const MAX_KEY_BYTES: usize = 1024;
/// At most this many characters of a bad key or bucket name are shown back.
const SHOWN: usize = 40;

/// An open bucket. `cursors` maps the numeric cursors `list-keys` hands out
/// to the backend's key cursors (the WIT cursor is a `u64`).
pub struct Bucket {
    name: String,
    cursors: Vec<String>,
}

/// The `T` of every `Store<T>`: one per request.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) hooks: OutboundHooks,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) kv: Arc<dyn KeyValue>,
    pub(crate) jobs: Arc<dyn crate::JobQueue>,
    pub(crate) outbox: Arc<dyn crate::Outbox>,
    pub(crate) limiter: MemoryCap,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

pub(crate) fn add_runway_interfaces(linker: &mut Linker<HostState>) -> Result<()> {
    generated::Imports::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

/// The memory cap of one instance (the app's limit, within the engine's bound).
/// Growing past it traps with [`MemoryCapExceeded`] so the failure can be told
/// apart from other traps.
pub(crate) struct MemoryCap {
    pub(crate) limit: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (tried to grow to {desired} bytes)")]
pub(crate) struct MemoryCapExceeded {
    pub(crate) limit: usize,
    pub(crate) desired: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.limit {
            return Err(MemoryCapExceeded {
                limit: self.limit,
                desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

fn other(e: impl std::fmt::Display) -> kv::Error {
    kv::Error::Other(e.to_string())
}

impl HostState {
    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<&Bucket, kv::Error> {
        self.table.get(bucket).map_err(other)
    }

    fn bucket_name(&self, bucket: &Resource<Bucket>) -> Result<String, kv::Error> {
        Ok(self.bucket(bucket)?.name.clone())
    }
}

/// `text` quoted, cut to [`SHOWN`] characters.
fn shown(text: &str) -> String {
    if text.chars().count() <= SHOWN {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(SHOWN).collect();
        format!("{cut:?}… ({} bytes)", text.len())
    }
}

/// Checked before anything reaches the store, the same on every backend:
/// 1 to [`MAX_BUCKET_NAME`] bytes, no NUL.
fn check_bucket_name(name: &str) -> Result<(), kv::Error> {
    if name.is_empty() || name.len() > MAX_BUCKET_NAME {
        return Err(kv::Error::Other(format!(
            "bucket name {} is {} bytes long; use 1 to {MAX_BUCKET_NAME} bytes",
            shown(name),
            name.len()
        )));
    }
    if let Some(at) = name.find('\0') {
        return Err(kv::Error::Other(format!(
            "bucket name {} contains a NUL byte (\\0) at byte {at}; remove it",
            shown(name)
        )));
    }
    Ok(())
}

/// At most [`MAX_KEY_BYTES`] bytes, no NUL.
fn check_key(key: &str) -> Result<(), kv::Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(kv::Error::Other(format!(
            "key {} is longer than the limit of {MAX_KEY_BYTES} bytes; use a shorter key (hash long ones)",
            shown(key)
        )));
    }
    if let Some(at) = key.find('\0') {
        return Err(kv::Error::Other(format!(
            "key {} contains a NUL byte (\\0) at byte {at}; remove it",
            shown(key)
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), kv::Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(kv::Error::Other(format!(
            "value of {} bytes is larger than the limit of {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    Ok(())
}

impl kv::Host for HostState {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, kv::Error> {
        check_bucket_name(&identifier)?;
        self.table
            .push(Bucket {
                name: identifier,
                cursors: Vec::new(),
            })
            .map_err(other)
    }
}

impl kv::HostBucket for HostState {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, kv::Error> {
        check_key(&key)?;
        let name = self.bucket_name(&bucket)?;
        self.kv.get(&name, &key).await.map_err(other)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), kv::Error> {
        check_key(&key)?;
        check_value(&value)?;
        let name = self.bucket_name(&bucket)?;
        self.kv.set(&name, &key, &value).await.map_err(other)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), kv::Error> {
        check_key(&key)?;
        let name = self.bucket_name(&bucket)?;
        self.kv.delete(&name, &key).await.map_err(other)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, kv::Error> {
        check_key(&key)?;
        let name = self.bucket_name(&bucket)?;
        self.kv.exists(&name, &key).await.map_err(other)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<kv::KeyResponse, kv::Error> {
        let open = self.bucket(&bucket)?;
        let name = open.name.clone();
        let after = match cursor {
            None => None,
            Some(n) => Some(
                open.cursors
                    .get(usize::try_from(n).unwrap_or(usize::MAX))
                    .cloned()
                    .ok_or_else(|| kv::Error::Other(format!("unknown cursor {n}")))?,
            ),
        };
        let (keys, next) = self
            .kv
            .keys(&name, after.as_deref(), KEYS_PAGE)
            .await
            .map_err(other)?;
        let cursor = match next {
            None => None,
            Some(next) => {
                let open = self.table.get_mut(&bucket).map_err(other)?;
                open.cursors.push(next);
                Some((open.cursors.len() - 1) as u64)
            }
        };
        Ok(kv::KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, kv::Error> {
        check_key(&key)?;
        let name = self.bucket_name(&bucket)?;
        let delta = i64::try_from(delta)
            .map_err(|_| other("delta does not fit a signed 64-bit integer"))?;
        let value = self.kv.increment(&name, &key, delta).await.map_err(other)?;
        u64::try_from(value).map_err(|_| other(format!("counter {key} is negative ({value})")))
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, kv::Error> {
        let name = self.bucket_name(&bucket)?;
        keys.iter().try_for_each(|k| check_key(k))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.kv.get(&name, &key).await.map_err(other)?;
            out.push(value.map(|v| (key, v)));
        }
        Ok(out)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), kv::Error> {
        let name = self.bucket_name(&bucket)?;
        for (key, value) in &key_values {
            check_key(key)?;
            check_value(value)?;
        }
        for (key, value) in key_values {
            self.kv.set(&name, &key, &value).await.map_err(other)?;
        }
        Ok(())
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), kv::Error> {
        let name = self.bucket_name(&bucket)?;
        keys.iter().try_for_each(|k| check_key(k))?;
        for key in keys {
            self.kv.delete(&name, &key).await.map_err(other)?;
        }
        Ok(())
    }
}
