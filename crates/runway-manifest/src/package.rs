//! [`Package`]: an app's publishable unit and its `.rwp` file format.
//!
//! A `.rwp` is a gzip-compressed tar whose first entry, `runway-package.json`,
//! indexes every other entry (path, size, SHA-256). The package digest is the
//! SHA-256 of that index in canonical form, so it depends on content only: not
//! on tar metadata, compression or file order. Decoding trusts nothing: every
//! entry is checked against the index (and vice versa), every path is checked,
//! and the unpacked size is bounded before and while reading.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::ManifestError;
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::paths;

/// Version of the `.rwp` layout written and accepted.
pub const PACKAGE_FORMAT: u32 = 1;
/// Name of the index entry, always first in the archive.
pub const INDEX_ENTRY: &str = "runway-package.json";
/// Most static files a package may carry.
pub const MAX_STATIC_FILES: usize = 10_000;

const MANIFEST_ENTRY: &str = "runway.toml";
const COMPONENT_ENTRY: &str = "component.wasm";
const STATIC_PREFIX: &str = "static/";
const WASM_MAGIC: &[u8; 4] = b"\0asm";
const REBUILD: &str =
    "the package is corrupt or was tampered with, rebuild it with `runway app build`";
const BUILD_HINT: &str = "build it first: cargo build --target wasm32-wasip2 --release";
/// Deepest static directory nesting followed; guards against symlink loops.
const MAX_STATIC_DEPTH: usize = 64;

/// A verified app package: manifest, component and static files, with digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub manifest: Manifest,
    /// The manifest text exactly as written (kept so the package round-trips).
    pub manifest_toml: String,
    pub component: Vec<u8>,
    /// Keyed by normalised relative path with `/` separators (`css/site.css`).
    pub static_files: BTreeMap<String, Vec<u8>>,
    /// Package identity: SHA-256 of the canonical index.
    pub digest: Digest,
    /// SHA-256 of the component bytes.
    pub component_digest: Digest,
}

/// Why an app directory or a `.rwp` could not become a [`Package`]. Every
/// message names the file or entry, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "no runway.toml in {}; run `runway app new` to create an app, or create runway.toml there",
        dir.display()
    )]
    ManifestMissing { dir: PathBuf },
    #[error(
        "component {} not found (from [component] path in runway.toml); {BUILD_HINT}",
        path.display()
    )]
    ComponentMissing { path: PathBuf },
    #[error(
        "static directory {} not found (from [static] dir in runway.toml); create it or remove [static]",
        path.display()
    )]
    StaticDirMissing { path: PathBuf },
    #[error("{}: {source}; check that it exists and is readable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("static file {path}: {problem}")]
    StaticFile { path: String, problem: String },
    #[error(
        "more than {limit} static files; remove files from the static directory or bundle them"
    )]
    TooManyFiles { limit: usize },
    #[error(
        "static files were given but runway.toml has no [static] table; add [static] with dir = \"public\""
    )]
    StaticWithoutDir,
    #[error(
        "{what} is not a WebAssembly binary (it does not start with \\0asm); point [component] path at the .wasm file, {BUILD_HINT}"
    )]
    NotWasm { what: String },
    #[error("not a Runway package (.rwp): {reason}")]
    NotAPackage { reason: String },
    #[error("package index {INDEX_ENTRY}: {problem}; {REBUILD}")]
    Index { problem: String },
    #[error("package entry {entry}: {problem}")]
    Entry { entry: String, problem: String },
    #[error(
        "package unpacks to more than {limit} bytes, the limit; make the app smaller or raise the environment's package size limit"
    )]
    TooLarge { limit: u64 },
}

type Res<T> = Result<T, PackageError>;
/// What the index lists: path -> (size, digest).
type Listed = BTreeMap<String, (u64, Digest)>;

/// The index entry. Field order is the serialisation order, which makes
/// `serde_json::to_vec` canonical once `files` is sorted.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    format: u32,
    files: Vec<IndexFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    path: String,
    /// 64 lowercase hex digits (no `sha256:` prefix: the key says it).
    sha256: String,
    size: u64,
}

impl Package {
    /// Reads an app directory: `runway.toml`, the component it names and every
    /// file under its static directory.
    pub fn from_dir(dir: &Path) -> Res<Package> {
        let manifest_path = dir.join(MANIFEST_ENTRY);
        let manifest_toml = match fs::read_to_string(&manifest_path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PackageError::ManifestMissing {
                    dir: dir.to_owned(),
                });
            }
            Err(source) => {
                return Err(PackageError::Io {
                    path: manifest_path,
                    source,
                });
            }
        };
        // Errors name the real path, which is what the person has in their editor.
        let manifest = Manifest::parse(&manifest_toml, &manifest_path.display().to_string())?;

        let component_path = dir.join(&manifest.component.path);
        let component = match fs::read(&component_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PackageError::ComponentMissing {
                    path: component_path,
                });
            }
            Err(source) => {
                return Err(PackageError::Io {
                    path: component_path,
                    source,
                });
            }
        };
        if !component.starts_with(WASM_MAGIC) {
            return Err(PackageError::NotWasm {
                what: component_path.display().to_string(),
            });
        }

        let mut static_files = BTreeMap::new();
        if let Some(s) = &manifest.static_files {
            collect_static(dir, &dir.join(&s.dir), &mut static_files)?;
        }
        Package::from_parts(manifest_toml, component, static_files)
    }

    /// Builds a package from its parts (the manifest is parsed as `runway.toml`).
    pub fn from_parts(
        manifest_toml: String,
        component: Vec<u8>,
        static_files: BTreeMap<String, Vec<u8>>,
    ) -> Res<Package> {
        let manifest = Manifest::parse(&manifest_toml, MANIFEST_ENTRY)?;
        if !component.starts_with(WASM_MAGIC) {
            return Err(PackageError::NotWasm {
                what: COMPONENT_ENTRY.to_owned(),
            });
        }
        if static_files.len() > MAX_STATIC_FILES {
            return Err(PackageError::TooManyFiles {
                limit: MAX_STATIC_FILES,
            });
        }
        if !static_files.is_empty() && manifest.static_files.is_none() {
            return Err(PackageError::StaticWithoutDir);
        }
        for key in static_files.keys() {
            paths::check_normal(key).map_err(|problem| PackageError::StaticFile {
                path: key.clone(),
                problem,
            })?;
        }
        let index = index_bytes(manifest_toml.as_bytes(), &component, &static_files);
        Ok(Package {
            manifest,
            digest: Digest::of(&index),
            component_digest: Digest::of(&component),
            manifest_toml,
            component,
            static_files,
        })
    }

    /// The `.rwp` bytes. Deterministic: equal packages give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let index = index_bytes(
            self.manifest_toml.as_bytes(),
            &self.component,
            &self.static_files,
        );
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        let mut append = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            // Writing to memory cannot fail, and every path was checked on the
            // way in (normal form), which is all tar's path checks look at.
            tar.append_data(&mut header, path, data)
                .expect("appending to an in-memory tar cannot fail");
        };
        append(INDEX_ENTRY, &index);
        append(MANIFEST_ENTRY, self.manifest_toml.as_bytes());
        append(COMPONENT_ENTRY, &self.component);
        for (rel, data) in &self.static_files {
            append(&format!("{STATIC_PREFIX}{rel}"), data);
        }
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .expect("finishing an in-memory archive cannot fail")
    }

    /// Decodes and verifies a `.rwp`. `max_unpacked` bounds the sum of entry sizes.
    pub fn from_bytes(bytes: &[u8], max_unpacked: u64) -> Res<Package> {
        Package::decode(bytes, max_unpacked)
    }

    /// Decodes and verifies a `.rwp` file (an upload received to disk), read
    /// as a stream: the compressed bytes are never all in memory.
    pub fn from_file(path: &Path, max_unpacked: u64) -> Res<Package> {
        let file = fs::File::open(path).map_err(|source| PackageError::Io {
            path: path.to_owned(),
            source,
        })?;
        Package::decode(io::BufReader::with_capacity(64 << 10, file), max_unpacked)
    }

    fn decode<R: io::BufRead>(mut input: R, max_unpacked: u64) -> Res<Package> {
        let magic = input.fill_buf().map_err(|e| {
            not_a_package(&format!(
                "cannot read the data ({e}); pass the .rwp file made by `runway app build`"
            ))
        })?;
        if !magic.starts_with(&[0x1f, 0x8b]) {
            return Err(not_a_package(
                "the data is not gzip-compressed; pass the .rwp file made by `runway app build`",
            ));
        }
        let exceeded = Rc::new(Cell::new(false));
        // Bounds the decompressed stream, not just the entry sizes we add up:
        // tar itself reads extension headers (long names, pax) fully into memory,
        // and a gzip bomb must not get that far. The slack covers tar headers and
        // padding for the largest allowed number of entries.
        let slack = (MAX_STATIC_FILES as u64 + 3) * 4096 + (2 << 20);
        let limited = Limited {
            inner: flate2::bufread::GzDecoder::new(input),
            remaining: max_unpacked.saturating_add(slack),
            exceeded: exceeded.clone(),
        };
        let read_err = |e: io::Error| {
            if exceeded.get() {
                PackageError::TooLarge {
                    limit: max_unpacked,
                }
            } else {
                not_a_package(&format!(
                    "cannot read the archive ({e}); the file is truncated or corrupt, rebuild it with `runway app build`"
                ))
            }
        };

        let mut archive = tar::Archive::new(limited);
        let mut index: Option<(Vec<u8>, Listed)> = None;
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut total: u64 = 0;
        for (n, entry) in archive.entries().map_err(read_err)?.enumerate() {
            let mut entry = entry.map_err(read_err)?;
            if n > MAX_STATIC_FILES + 2 {
                return Err(PackageError::TooManyFiles {
                    limit: MAX_STATIC_FILES,
                });
            }
            let raw_path = entry.path_bytes().into_owned();
            let path = String::from_utf8(raw_path).map_err(|e| {
                entry_err(
                    &String::from_utf8_lossy(e.as_bytes()),
                    "the name is not UTF-8",
                )
            })?;
            paths::check_normal(&path).map_err(|p| PackageError::Entry {
                entry: path.clone(),
                problem: format!("unsafe path: {p}; {REBUILD}"),
            })?;
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                return Err(entry_err(
                    &path,
                    &format!("is a {kind:?} entry, only regular files are allowed"),
                ));
            }
            let size = entry.size();
            // Refused before a byte of it is read (and long before parsing).
            if path == MANIFEST_ENTRY && size > MAX_MANIFEST_BYTES as u64 {
                return Err(entry_err(
                    &path,
                    &format!(
                        "is {size} bytes, more than the limit of {MAX_MANIFEST_BYTES} bytes; \
                         keep data out of runway.toml (put files under [static])"
                    ),
                ));
            }
            total = total.saturating_add(size);
            if total > max_unpacked {
                return Err(PackageError::TooLarge {
                    limit: max_unpacked,
                });
            }
            // The capacity hint is capped: the size comes from an untrusted header.
            let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
            entry.read_to_end(&mut data).map_err(read_err)?;
            if data.len() as u64 != size {
                return Err(not_a_package(&format!(
                    "entry {path} is truncated; rebuild the package with `runway app build`"
                )));
            }

            let Some((_, listed)) = &index else {
                if path != INDEX_ENTRY {
                    return Err(not_a_package(&format!(
                        "the first entry is {path}, not {INDEX_ENTRY}; rebuild the package with `runway app build`"
                    )));
                }
                let listed = parse_index(&data, max_unpacked)?;
                index = Some((data, listed));
                continue;
            };
            if files.contains_key(&path) || path == INDEX_ENTRY {
                return Err(entry_err(&path, "appears more than once"));
            }
            let Some((want_size, want_digest)) = listed.get(&path) else {
                return Err(entry_err(&path, &format!("is not listed in {INDEX_ENTRY}")));
            };
            if *want_size != size {
                return Err(entry_err(
                    &path,
                    &format!("size mismatch (index says {want_size} bytes, content is {size})"),
                ));
            }
            let got = Digest::of(&data);
            if got != *want_digest {
                return Err(entry_err(
                    &path,
                    &format!("sha256 mismatch (index says {want_digest}, content is {got})"),
                ));
            }
            files.insert(path, data);
        }
        let Some((index_json, listed)) = index else {
            return Err(not_a_package(
                "the archive is empty; pass the .rwp file made by `runway app build`",
            ));
        };
        if let Some(missing) = listed.keys().find(|p| !files.contains_key(*p)) {
            return Err(entry_err(
                missing,
                &format!("is listed in {INDEX_ENTRY} but missing"),
            ));
        }

        // Whatever follows the tar data must be padding, then a gzip trailer whose
        // CRC checks out, then nothing: a cut or appended file is an error even if
        // every entry happened to be complete.
        let mut rest = archive.into_inner();
        io::copy(&mut (&mut rest).take(1 << 20), &mut io::sink()).map_err(read_err)?;
        let mut probe = [0u8; 1];
        let mut trailing = rest.read(&mut probe).map_err(read_err)? != 0;
        if !trailing {
            let mut input = rest.inner.into_inner();
            trailing = !input.fill_buf().map_err(read_err)?.is_empty();
        }
        if trailing {
            return Err(not_a_package(
                "unexpected data after the end of the archive; rebuild the package with `runway app build`",
            ));
        }

        let manifest_toml = String::from_utf8(files.remove(MANIFEST_ENTRY).unwrap_or_default())
            .map_err(|_| entry_err(MANIFEST_ENTRY, "is not UTF-8 text"))?;
        let component = files.remove(COMPONENT_ENTRY).unwrap_or_default();
        let static_files = files
            .into_iter()
            .filter_map(|(p, d)| p.strip_prefix(STATIC_PREFIX).map(|rel| (rel.to_owned(), d)))
            .collect();
        let package = Package::from_parts(manifest_toml, component, static_files)?;
        // from_parts recomputes the canonical index; it must be the one we read.
        if package.digest != Digest::of(&index_json) {
            return Err(PackageError::Index {
                problem: "does not match the package content".into(),
            });
        }
        Ok(package)
    }

    /// `{name}-{version}.rwp`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.rwp",
            self.manifest.app.name, self.manifest.app.version
        )
    }

    /// A static file by its normalised relative path (`css/site.css`).
    pub fn static_file(&self, path: &str) -> Option<&[u8]> {
        self.static_files.get(path).map(Vec::as_slice)
    }

    /// Sum of the sizes of manifest, component and static files.
    pub fn unpacked_size(&self) -> u64 {
        let statics: u64 = self.static_files.values().map(|d| d.len() as u64).sum();
        self.manifest_toml.len() as u64 + self.component.len() as u64 + statics
    }
}

fn not_a_package(reason: &str) -> PackageError {
    PackageError::NotAPackage {
        reason: reason.to_owned(),
    }
}

fn entry_err(entry: &str, problem: &str) -> PackageError {
    PackageError::Entry {
        entry: entry.to_owned(),
        problem: format!("{problem}; {REBUILD}"),
    }
}

/// Canonical index bytes for the given content.
fn index_bytes(manifest: &[u8], component: &[u8], statics: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let file = |path: String, data: &[u8]| IndexFile {
        path,
        sha256: Digest::of(data).hex(),
        size: data.len() as u64,
    };
    let mut files = vec![
        file(MANIFEST_ENTRY.to_owned(), manifest),
        file(COMPONENT_ENTRY.to_owned(), component),
    ];
    files.extend(
        statics
            .iter()
            .map(|(rel, d)| file(format!("{STATIC_PREFIX}{rel}"), d)),
    );
    files.sort_by(|a, b| a.path.cmp(&b.path));
    serde_json::to_vec(&Index {
        format: PACKAGE_FORMAT,
        files,
    })
    .expect("the index always serializes")
}

/// Parses and checks the index: canonical form, supported format, safe and
/// expected paths, sizes within the limit. Returns path -> (size, digest).
fn parse_index(data: &[u8], max_unpacked: u64) -> Res<Listed> {
    let index_err = |problem: String| PackageError::Index { problem };
    let index: Index =
        serde_json::from_slice(data).map_err(|e| index_err(format!("not a valid index ({e})")))?;
    if index.format != PACKAGE_FORMAT {
        return Err(PackageError::NotAPackage {
            reason: format!(
                "package format {} is not supported (this Runway reads format {PACKAGE_FORMAT}); upgrade Runway or rebuild the package with this version",
                index.format
            ),
        });
    }
    // Canonical form is what the digest is computed over; accepting any other
    // spelling would let two different files claim the same identity.
    if serde_json::to_vec(&index).ok().as_deref() != Some(data)
        || !index.files.windows(2).all(|w| w[0].path < w[1].path)
    {
        return Err(index_err(
            "is not in canonical form (sorted, unique, compact)".into(),
        ));
    }
    if index.files.len() > MAX_STATIC_FILES + 2 {
        return Err(PackageError::TooManyFiles {
            limit: MAX_STATIC_FILES,
        });
    }
    let mut out = BTreeMap::new();
    let mut total: u64 = data.len() as u64;
    for f in index.files {
        paths::check_normal(&f.path)
            .map_err(|p| index_err(format!("lists an unsafe path {:?} ({p})", f.path)))?;
        let known = f.path == MANIFEST_ENTRY
            || f.path == COMPONENT_ENTRY
            || f.path
                .strip_prefix(STATIC_PREFIX)
                .is_some_and(|r| !r.is_empty());
        if !known {
            return Err(index_err(format!(
                "lists {:?}, which is not runway.toml, component.wasm or static/…",
                f.path
            )));
        }
        let digest = Digest::parse(&format!("sha256:{}", f.sha256))
            .map_err(|_| index_err(format!("has an invalid sha256 for {}", f.path)))?;
        total = total.saturating_add(f.size);
        if total > max_unpacked {
            return Err(PackageError::TooLarge {
                limit: max_unpacked,
            });
        }
        out.insert(f.path, (f.size, digest));
    }
    for required in [MANIFEST_ENTRY, COMPONENT_ENTRY] {
        if !out.contains_key(required) {
            return Err(index_err(format!("does not list {required}")));
        }
    }
    Ok(out)
}

/// Reads every file under `static_dir` into `out`, keyed by normalised path.
fn collect_static(
    app_dir: &Path,
    static_dir: &Path,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Res<()> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::Io { path, source }
    };
    let root = fs::canonicalize(app_dir).map_err(io_err(app_dir))?;
    match fs::metadata(static_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(PackageError::StaticFile {
                path: static_dir.display().to_string(),
                problem: "is not a directory ([static] dir must name a directory); fix [static] dir in runway.toml".into(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PackageError::StaticDirMissing {
                path: static_dir.to_owned(),
            });
        }
        Err(source) => {
            return Err(PackageError::Io {
                path: static_dir.to_owned(),
                source,
            });
        }
    }
    let real = fs::canonicalize(static_dir).map_err(io_err(static_dir))?;
    if !real.starts_with(&root) {
        return Err(PackageError::StaticFile {
            path: static_dir.display().to_string(),
            problem: format!(
                "resolves to {}, outside the app directory; move the static files into the app directory",
                real.display()
            ),
        });
    }
    walk(&root, static_dir, "", &mut vec![real], out)
}

/// `ancestors` holds the canonical paths of the directories being walked, so a
/// symlink back to one of them is reported as a loop instead of recursing.
fn walk(
    root: &Path,
    dir: &Path,
    rel: &str,
    ancestors: &mut Vec<PathBuf>,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Res<()> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::Io { path, source }
    };
    let bad = |path: &Path, problem: String| PackageError::StaticFile {
        path: path.display().to_string(),
        problem,
    };
    if ancestors.len() > MAX_STATIC_DEPTH {
        return Err(bad(
            dir,
            format!(
                "directories nest more than {MAX_STATIC_DEPTH} deep; flatten the static directory"
            ),
        ));
    }
    let mut entries = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(dir))?;
    // Sorted so that errors (and the file-count cut-off) do not depend on the
    // order the file system happens to list entries in.
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let full = e.path();
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| bad(&full, "the file name is not valid UTF-8; rename it".into()))?;
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        paths::check_normal(&key).map_err(|p| bad(&full, p))?;
        let ft = e.file_type().map_err(io_err(&full))?;
        let (is_dir, is_file) = if ft.is_symlink() {
            let target = fs::canonicalize(&full).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    bad(&full, "is a broken symlink; fix or remove it".into())
                }
                _ => PackageError::Io {
                    path: full.clone(),
                    source: e,
                },
            })?;
            if !target.starts_with(root) {
                return Err(bad(
                    &full,
                    format!(
                        "is a symlink to {}, outside the app directory; copy the file into the app directory instead",
                        target.display()
                    ),
                ));
            }
            let m = fs::metadata(&full).map_err(io_err(&full))?;
            (m.is_dir(), m.is_file())
        } else {
            (ft.is_dir(), ft.is_file())
        };
        if is_dir {
            let real = fs::canonicalize(&full).map_err(io_err(&full))?;
            if ancestors.contains(&real) {
                return Err(bad(
                    &full,
                    format!(
                        "is a symlink loop (it leads back to {}); remove the symlink",
                        real.display()
                    ),
                ));
            }
            ancestors.push(real);
            walk(root, &full, &key, ancestors, out)?;
            ancestors.pop();
        } else if is_file {
            if out.len() >= MAX_STATIC_FILES {
                return Err(PackageError::TooManyFiles {
                    limit: MAX_STATIC_FILES,
                });
            }
            let data = fs::read(&full).map_err(io_err(&full))?;
            out.insert(key, data);
        } else {
            return Err(bad(
                &full,
                "is not a regular file (socket, pipe or device); remove it from the static directory".into(),
            ));
        }
    }
    Ok(())
}

/// A reader that fails once more than `remaining` bytes were read, and records
/// that it did (tar wraps I/O errors, so the flag is how we tell "too large"
/// apart from "corrupt").
struct Limited<R> {
    inner: R,
    remaining: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Allow a zero-length read at the limit only if the stream is done.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.set(true);
                    Err(io::Error::other("package exceeds the size limit"))
                }
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}
