//! The crate dependency graph is the one `ARCHITECTURE.md` draws ("Crate
//! dependencies"): every edge between workspace crates that `cargo metadata`
//! finds is in its table, and every edge in the table exists. Adding a
//! forbidden edge (say `runway-controller` → `runway-frontend`) fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The table of the "Crate dependencies" section: one row per crate, its
/// allowed workspace dependencies in the second column (`—` for none).
fn documented(architecture: &str) -> Graph {
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Crate dependencies"))
        .expect("ARCHITECTURE.md has a \"## Crate dependencies\" section");
    let mut graph = Graph::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let names = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let [krate]: [String; 1] = names(cells[1]).try_into().unwrap_or_else(|_| {
            panic!("ARCHITECTURE.md row {row:?}: the first column names one crate")
        });
        let edges = names(cells[2]).into_iter().collect();
        assert!(
            graph.insert(krate.clone(), edges).is_none(),
            "ARCHITECTURE.md lists {krate} twice"
        );
    }
    assert!(!graph.is_empty(), "the crate dependency table has no rows");
    graph
}

/// Every workspace crate and the workspace crates it depends on (normal,
/// build and dev dependencies alike), as `cargo metadata` sees them.
fn actual(root: &Path) -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let edges = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| d["name"].as_str().expect("dependency name").to_string())
                .filter(|name| members.contains(name))
                .collect();
            (p["name"].as_str().expect("name").to_string(), edges)
        })
        .collect()
}

/// What differs between the documented and the actual graph, one line each.
fn differences(documented: &Graph, actual: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (krate, edges) in actual {
        let Some(allowed) = documented.get(krate) else {
            problems.push(format!(
                "{krate} is a workspace crate but has no row in ARCHITECTURE.md's \
                 \"Crate dependencies\" table: add one"
            ));
            continue;
        };
        for dependency in edges.difference(allowed) {
            problems.push(format!(
                "{krate} depends on {dependency}, an edge ARCHITECTURE.md does not allow: \
                 remove the dependency (compose roles in runway-cli, share plumbing through \
                 runway-server, interfaces through runway-api) or, if the architecture \
                 changes, change the table and its invariants"
            ));
        }
        for dependency in allowed.difference(edges) {
            problems.push(format!(
                "ARCHITECTURE.md says {krate} depends on {dependency}, but it does not: \
                 remove the edge from the table"
            ));
        }
    }
    for krate in documented.keys().filter(|k| !actual.contains_key(*k)) {
        problems.push(format!(
            "ARCHITECTURE.md lists {krate}, which is not a workspace crate: remove its row"
        ));
    }
    problems
}

#[test]
fn crate_dependencies_are_the_documented_ones() {
    let root = workspace_root();
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let problems = differences(&documented(&architecture), &actual(&root));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_forbidden_edge_is_reported() {
    let root = workspace_root();
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let documented = documented(&architecture);
    let mut actual = actual(&root);
    actual
        .get_mut("runway-controller")
        .expect("runway-controller is a workspace crate")
        .insert("runway-frontend".into());
    assert_eq!(
        differences(&documented, &actual),
        [
            "runway-controller depends on runway-frontend, an edge ARCHITECTURE.md does not \
          allow: remove the dependency (compose roles in runway-cli, share plumbing through \
          runway-server, interfaces through runway-api) or, if the architecture changes, \
          change the table and its invariants"
        ]
    );
}
