//! The key-value counters every test guest keeps (included with `#[path]` by
//! `tests/guests/jobs` and `tests/guests/ticker`; each defines `crate::bindings`
//! from `wit/`): `count` increments one, `keys` lists those with a prefix as
//! `key=value` lines (what the tests read through `GET /{app}/keys?prefix=…`).

use crate::bindings::wasi::keyvalue::{atomics, store as kv};

pub fn count(key: &str) -> u64 {
    let bucket = kv::open("default").expect("open the bucket");
    atomics::increment(&bucket, key, 1).expect("increment")
}

pub fn keys(prefix: &str) -> String {
    let bucket = kv::open("default").expect("open the bucket");
    let mut out = String::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor).expect("list keys");
        for key in page.keys {
            if key.starts_with(prefix) {
                let value = bucket.get(&key).expect("get").unwrap_or_default();
                // Counters are stored as decimal text or little-endian u64.
                let shown = match String::from_utf8(value.clone()) {
                    Ok(s) if s.parse::<u64>().is_ok() => s,
                    _ if value.len() == 8 => {
                        u64::from_le_bytes(value.try_into().unwrap()).to_string()
                    }
                    _ => format!("{value:?}"),
                };
                out.push_str(&format!("{key}={shown}\n"));
            }
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out
}
