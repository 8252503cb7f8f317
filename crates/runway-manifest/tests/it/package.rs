//! Package format tests: directory → `.rwp` → package round trips, and every
//! kind of broken or hostile `.rwp` is refused with a precise error.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use runway_manifest::{Digest, Package, PackageError};

const MANIFEST: &str = r#"[app]
name = "notes"
version = "1.2.0"

[component]
path = "app.wasm"

[static]
dir = "public"
"#;
const WASM: &[u8] = b"\0asm\x0d\0\x01\0fake component body";
const BIG: u64 = 1 << 30;

/// Writes an app into `dir`, creating files in the given order.
fn write_app(dir: &Path, reverse: bool) {
    let mut files: Vec<(&str, &[u8])> = vec![
        ("runway.toml", MANIFEST.as_bytes()),
        ("app.wasm", WASM),
        ("public/index.html", b"<h1>notes</h1>"),
        ("public/css/site.css", b"body { color: red }"),
        ("public/.well-known/x", b""),
        ("target/ignored.txt", b"not part of the package"),
    ];
    if reverse {
        files.reverse();
    }
    for (rel, data) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}

fn sample() -> Package {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), false);
    Package::from_dir(dir.path()).unwrap()
}

/// Reads every (path, data) of a `.rwp` without any verification.
fn entries_of(rwp: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(rwp));
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

/// Builds a `.rwp` from raw entries, bypassing the tar crate's path checks so
/// that hostile names can be written.
fn raw_rwp(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, data, kind) in entries {
        let mut h = tar::Header::new_gnu();
        let name = &mut h.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(*kind);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn regular(entries: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8], tar::EntryType)> {
    entries
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice(), tar::EntryType::Regular))
        .collect()
}

fn decode_err(bytes: &[u8]) -> String {
    match Package::from_bytes(bytes, BIG) {
        Ok(_) => panic!("decoding succeeded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn dir_round_trip() {
    let p = sample();
    assert_eq!(p.file_name(), "notes-1.2.0.rwp");
    assert_eq!(
        p.static_files.keys().collect::<Vec<_>>(),
        [".well-known/x", "css/site.css", "index.html"]
    );
    assert_eq!(
        p.static_file("css/site.css"),
        Some(&b"body { color: red }"[..])
    );
    assert_eq!(p.static_file("missing.css"), None);
    assert_eq!(p.component_digest, Digest::of(WASM));
    let size = (MANIFEST.len() + WASM.len() + 14 + 19) as u64;
    assert_eq!(p.unpacked_size(), size);

    let bytes = p.to_bytes();
    let q = Package::from_bytes(&bytes, BIG).unwrap();
    assert_eq!(p, q);
    assert_eq!(q.to_bytes(), bytes, "encoding is deterministic");
    // The limit is inclusive of the index.
    let index_len = entries_of(&bytes)[0].1.len() as u64;
    Package::from_bytes(&bytes, size + index_len).unwrap();
    let names: Vec<_> = entries_of(&bytes).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        names,
        [
            "runway-package.json",
            "runway.toml",
            "component.wasm",
            "static/.well-known/x",
            "static/css/site.css",
            "static/index.html"
        ]
    );
}

#[test]
fn digest_depends_on_content_only() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_app(a.path(), false);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_app(b.path(), true);
    let pa = Package::from_dir(a.path()).unwrap();
    let pb = Package::from_dir(b.path()).unwrap();
    assert_eq!(pa.digest, pb.digest);
    assert_eq!(pa.to_bytes(), pb.to_bytes());

    // A tar with other metadata and another entry order has the same digest.
    let mut entries = entries_of(&pa.to_bytes());
    entries[1..].reverse();
    let reordered = raw_rwp(&regular(&entries));
    assert_ne!(reordered, pa.to_bytes());
    assert_eq!(
        Package::from_bytes(&reordered, BIG).unwrap().digest,
        pa.digest
    );

    // Any content change changes the digest.
    fs::write(b.path().join("public/index.html"), "<h1>changed</h1>").unwrap();
    assert_ne!(Package::from_dir(b.path()).unwrap().digest, pa.digest);
}

#[test]
fn tampered_component_is_refused() {
    let mut entries = entries_of(&sample().to_bytes());
    let comp = entries
        .iter_mut()
        .find(|(p, _)| p == "component.wasm")
        .unwrap();
    let last = comp.1.len() - 1;
    comp.1[last] ^= 1;
    let err = decode_err(&raw_rwp(&regular(&entries)));
    assert!(
        err.starts_with("package entry component.wasm: sha256 mismatch (index says sha256:"),
        "{err}"
    );
    assert!(err.contains("rebuild it with `runway app build`"), "{err}");
}

#[test]
fn size_mismatch_missing_extra_and_duplicate_entries_are_refused() {
    let entries = entries_of(&sample().to_bytes());

    let mut longer = entries.clone();
    longer[3].1.push(b'!');
    assert!(decode_err(&raw_rwp(&regular(&longer))).contains("size mismatch"));

    let missing: Vec<_> = entries
        .iter()
        .filter(|(p, _)| p != "static/index.html")
        .cloned()
        .collect();
    let err = decode_err(&raw_rwp(&regular(&missing)));
    assert!(
        err.contains("static/index.html: is listed in runway-package.json but missing"),
        "{err}"
    );

    let mut extra = entries.clone();
    extra.push(("static/evil.js".into(), b"alert(1)".to_vec()));
    let err = decode_err(&raw_rwp(&regular(&extra)));
    assert!(
        err.contains("static/evil.js: is not listed in runway-package.json"),
        "{err}"
    );

    let mut dup = entries.clone();
    dup.push(entries[2].clone());
    assert!(decode_err(&raw_rwp(&regular(&dup))).contains("appears more than once"));

    let mut index_not_first = entries.clone();
    index_not_first.swap(0, 1);
    let err = decode_err(&raw_rwp(&regular(&index_not_first)));
    assert!(err.contains("first entry is runway.toml"), "{err}");

    let mut bad_index = entries.clone();
    bad_index[0].1 = b"{\"format\":1}".to_vec();
    assert!(
        decode_err(&raw_rwp(&regular(&bad_index)))
            .starts_with("package index runway-package.json:")
    );

    let mut pretty_index = entries.clone();
    let v: serde_json::Value = serde_json::from_slice(&entries[0].1).unwrap();
    pretty_index[0].1 = serde_json::to_vec_pretty(&v).unwrap();
    assert!(decode_err(&raw_rwp(&regular(&pretty_index))).contains("canonical form"));
}

#[test]
fn truncated_input_is_an_error() {
    let bytes = sample().to_bytes();
    let n = bytes.len();
    for cut in [
        0,
        1,
        2,
        9,
        10,
        50,
        n / 4,
        n / 2,
        n - 20,
        n - 8,
        n - 4,
        n - 1,
    ] {
        let err = Package::from_bytes(&bytes[..cut], BIG);
        assert!(err.is_err(), "cut at {cut} of {n} decoded");
    }
    // Every cut point and every single-byte corruption: errors, never panics.
    for cut in 0..n {
        assert!(
            Package::from_bytes(&bytes[..cut], BIG).is_err(),
            "cut at {cut}"
        );
    }
    let original = Package::from_bytes(&bytes, BIG).unwrap();
    for i in 0..n {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x55;
        if let Ok(p) = Package::from_bytes(&flipped, BIG) {
            // Only bytes that do not carry content (e.g. gzip header flags/mtime)
            // may change without an error, and then the package is unchanged.
            assert_eq!(p, original, "flip at {i} changed the content undetected");
        }
    }
    let mut appended = bytes.clone();
    appended.extend_from_slice(b"trailing");
    assert!(decode_err(&appended).contains("after the end of the archive"));
}

#[test]
fn hostile_paths_and_entry_types_are_refused() {
    let entries = entries_of(&sample().to_bytes());
    for bad in [
        "../x",
        "static/../../x",
        "/etc/passwd",
        "static\\x",
        "static//x",
    ] {
        let mut e = regular(&entries);
        e.push((bad, b"x", tar::EntryType::Regular));
        let err = decode_err(&raw_rwp(&e));
        assert!(
            err.contains(&format!("package entry {bad}: unsafe path")),
            "{bad}: {err}"
        );
    }
    let mut e = regular(&entries);
    e.push(("static/link", b"", tar::EntryType::Symlink));
    assert!(decode_err(&raw_rwp(&e)).contains("only regular files are allowed"));
    let mut e = regular(&entries);
    e.push(("static/dir", b"", tar::EntryType::Directory));
    assert!(decode_err(&raw_rwp(&e)).contains("only regular files are allowed"));
}

#[test]
fn oversized_package_is_refused() {
    let p = sample();
    let bytes = p.to_bytes();
    match Package::from_bytes(&bytes, p.unpacked_size() - 1) {
        Err(PackageError::TooLarge { limit }) => assert_eq!(limit, p.unpacked_size() - 1),
        other => panic!("{other:?}"),
    }
    let err = Package::from_bytes(&bytes, 100).unwrap_err().to_string();
    assert!(err.contains("more than 100 bytes"), "{err}");

    // A gzip bomb (a huge entry of zeros) is stopped by the limit, not read.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let mut h = tar::Header::new_gnu();
    h.set_path("runway-package.json").unwrap();
    h.set_size(64 << 20);
    h.set_cksum();
    gz.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(matches!(
        Package::from_bytes(&bomb, 1 << 20),
        Err(PackageError::TooLarge { .. })
    ));
}

#[test]
fn not_a_package() {
    assert!(decode_err(b"hello world").starts_with("not a Runway package (.rwp): "));
    assert!(decode_err(b"").starts_with("not a Runway package (.rwp): "));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&[7u8; 2000]).unwrap();
    assert!(decode_err(&gz.finish().unwrap()).starts_with("not a Runway package (.rwp): "));
    let empty_tar = raw_rwp(&[]);
    assert!(decode_err(&empty_tar).contains("archive is empty"));
}

#[test]
fn from_parts_checks_its_inputs() {
    let err = |statics: &[(&str, &[u8])]| {
        let s: BTreeMap<String, Vec<u8>> = statics
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        Package::from_parts(MANIFEST.into(), WASM.to_vec(), s)
            .unwrap_err()
            .to_string()
    };
    for key in ["../secret", "/etc/passwd", "a/../../b", "", "a\\b"] {
        assert!(
            err(&[(key, b"x")]).starts_with(&format!("static file {key}:")),
            "{key}"
        );
    }
    let e = Package::from_parts(MANIFEST.into(), b"MZ not wasm".to_vec(), BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("component.wasm is not a WebAssembly binary"),
        "{e}"
    );
    let no_static = MANIFEST.replace("[static]\ndir = \"public\"\n", "");
    let e =
        Package::from_parts(no_static, WASM.to_vec(), [("a".into(), vec![])].into()).unwrap_err();
    assert!(matches!(e, PackageError::StaticWithoutDir));
    let e = Package::from_parts("[app]\n".into(), WASM.to_vec(), BTreeMap::new()).unwrap_err();
    assert!(matches!(e, PackageError::Manifest(_)));
    assert!(
        e.to_string()
            .starts_with("runway.toml: missing key app.name"),
        "{e}"
    );
}

#[test]
fn from_dir_errors_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let e = Package::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("runway app new"),
        "{e}"
    );

    fs::write(dir.path().join("runway.toml"), MANIFEST).unwrap();
    let e = Package::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("app.wasm") && e.contains("cargo build --target wasm32-wasip2 --release"),
        "{e}"
    );

    fs::write(dir.path().join("app.wasm"), WASM).unwrap();
    let e = Package::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        e.starts_with("static directory ") && e.contains("public"),
        "{e}"
    );

    fs::write(dir.path().join("runway.toml"), "[app]\nname = \"Bad\"\n").unwrap();
    let e = Package::from_dir(dir.path()).unwrap_err().to_string();
    let manifest_path = dir.path().join("runway.toml").display().to_string();
    assert!(
        e.starts_with(&format!("{manifest_path}:2: app.name = \"Bad\"")),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn static_symlinks_inside_are_followed_outside_refused() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), false);
    symlink(
        dir.path().join("public/index.html"),
        dir.path().join("public/home.html"),
    )
    .unwrap();
    symlink(
        dir.path().join("public/css"),
        dir.path().join("public/styles"),
    )
    .unwrap();
    let p = Package::from_dir(dir.path()).unwrap();
    assert_eq!(p.static_file("home.html"), Some(&b"<h1>notes</h1>"[..]));
    assert_eq!(
        p.static_file("styles/site.css"),
        Some(&b"body { color: red }"[..])
    );

    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "s3cret").unwrap();
    symlink(
        outside.path().join("secret"),
        dir.path().join("public/secret"),
    )
    .unwrap();
    let e = Package::from_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("outside the app directory"), "{e}");
    fs::remove_file(dir.path().join("public/secret")).unwrap();

    // A symlink loop ends in an error, not a hang.
    symlink(dir.path().join("public"), dir.path().join("public/loop")).unwrap();
    let e = Package::from_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("symlink loop"), "{e}");
}

#[test]
fn oversized_manifest_entry_is_refused_before_reading_it() {
    let mut package = sample();
    package.manifest_toml = format!(
        "{MANIFEST}{}",
        "# padding\n".repeat(runway_manifest::MAX_MANIFEST_BYTES / 10 + 1)
    );
    let err = Package::from_bytes(&package.to_bytes(), BIG).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, PackageError::Entry { ref entry, .. } if entry == "runway.toml"),
        "{msg}"
    );
    assert!(msg.contains("more than the limit of 65536 bytes"), "{msg}");
}
