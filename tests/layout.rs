//! The crate's architecture, checked: `src/lib.rs` declares the engine's
//! modules and then the application's; no engine module names an
//! application module, and the engine's modules form no cycle (each layer
//! imports only the layers below it). Reads the sources; runs no GPU.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules `lib.rs` declares under its `engine` and `application`
/// headings, in order.
fn groups() -> (Vec<String>, Vec<String>) {
    let lib = std::fs::read_to_string("src/lib.rs").unwrap();
    let (mut engine, mut app) = (Vec::new(), Vec::new());
    let mut current: Option<&mut Vec<String>> = None;
    for line in lib.lines() {
        let line = line.trim();
        if line.starts_with("//") && line.ends_with(" engine") {
            current = Some(&mut engine);
        } else if line.starts_with("//") && line.ends_with(" application") {
            current = Some(&mut app);
        } else if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            current
                .as_mut()
                .expect("every `pub mod` in lib.rs sits under an engine or application heading")
                .push(name.to_string());
        }
    }
    (engine, app)
}

/// The crate root's re-exports as (name, module), read from the
/// `pub use module::{A, B};` lines of `src/lib.rs`: `crate::Tensor` names
/// `tensor`.
fn root_reexports() -> Vec<(String, String)> {
    let lib = std::fs::read_to_string("src/lib.rs").unwrap();
    let mut out = Vec::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim_start_matches('{').trim_end_matches('}');
        for n in names.split(',') {
            out.push((n.trim().to_string(), module.to_string()));
        }
    }
    out
}

/// The source files of module `name`: `src/name.rs` or everything under
/// `src/name/`.
fn files(name: &str) -> Vec<PathBuf> {
    let file = PathBuf::from(format!("src/{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(format!("src/{name}"))];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// Top-level modules a source file's code (not its comments) names through `crate::` paths (the
/// crate root's re-exports resolved to their modules), with the line.
fn imports(path: &Path, modules: &BTreeSet<String>) -> Vec<(String, usize)> {
    let reexports = root_reexports();
    let src = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        // doc links name modules without importing them
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            // `crate::{a, b::c}` names several
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let ident: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let module = reexports
                    .iter()
                    .find(|(r, _)| *r == ident)
                    .map(|(_, m)| m.clone())
                    .unwrap_or(ident);
                if modules.contains(&module) {
                    out.push((module, i + 1));
                }
            }
        }
    }
    out
}

#[test]
fn lib_rs_declares_the_engine_then_the_application() {
    let (engine, app) = groups();
    for m in [
        "error",
        "gpu",
        "tensor",
        "tape",
        "ops",
        "shaders",
        "gradcheck",
        "shape",
    ] {
        assert!(
            engine.contains(&m.to_string()),
            "{m} is not under the engine heading: {engine:?}"
        );
    }
    for m in [
        "posters",
        "loader",
        "train",
        "plot",
        "checkpoint",
        "nn",
        "metrics",
        "data",
    ] {
        assert!(
            app.contains(&m.to_string()),
            "{m} is not under the application heading: {app:?}"
        );
    }
}

#[test]
fn the_root_reexports_are_read_from_lib_rs() {
    let r = root_reexports();
    for (name, module) in [
        ("Tensor", "tensor"),
        ("GradWrite", "tape"),
        ("Result", "error"),
    ] {
        assert!(r.contains(&(name.to_string(), module.to_string())), "{r:?}");
    }
}

#[test]
fn no_engine_module_imports_the_application() {
    let (engine, app) = groups();
    let all: BTreeSet<String> = engine.iter().chain(&app).cloned().collect();
    let mut offences = Vec::new();
    for m in &engine {
        for f in files(m) {
            for (to, line) in imports(&f, &all) {
                if app.contains(&to) {
                    offences.push(format!(
                        "{}:{line} (engine `{m}`) imports application `{to}`",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(offences.is_empty(), "\n{}", offences.join("\n"));
}

#[test]
fn engine_modules_form_no_cycle() {
    let (engine, app) = groups();
    let all: BTreeSet<String> = engine.iter().chain(&app).cloned().collect();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for m in &engine {
        for f in files(m) {
            for (to, line) in imports(&f, &all) {
                if &to != m && engine.contains(&to) {
                    edges
                        .entry(m.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| format!("{}:{line}", f.display()));
                }
            }
        }
    }
    // Depth-first search for a back edge; report the cycle with the lines.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            return Some(path[at..].to_vec());
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        let next: Vec<String> = edges
            .get(m)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default();
        for to in next {
            if let Some(c) = visit(&to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in &engine {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            let steps: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", edges[a][b]))
                .collect();
            panic!(
                "engine modules import each other in a cycle:\n{}",
                steps.join("\n")
            );
        }
    }
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    // The checker's own strength: the GPU layer naming `Tensor` (as it once
    // did) closes gpu -> tensor -> gpu.
    let dir = std::env::temp_dir().join(format!("postergrad-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("probe.rs");
    std::fs::write(
        &f,
        "use crate::tensor::Tensor;\nfn f(_: &crate::Tensor) {}\nuse crate::{gpu, ops::relu};\n",
    )
    .unwrap();
    let all: BTreeSet<String> = ["tensor", "gpu", "ops"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got = imports(&f, &all);
    assert_eq!(
        got,
        vec![
            ("tensor".to_string(), 1),
            ("tensor".to_string(), 2),
            ("gpu".to_string(), 3),
            ("ops".to_string(), 3)
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_kernel_has_a_heading_on_its_ops_page() {
    // tools/kernel_index.py writes them from the registry; a kernel added
    // without rerunning it fails here.
    for (op, k) in postergrad::ops::registry::kernels() {
        let page = format!("docs/kernels/{}.md", op.name);
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("{page}: {e} (run python3 tools/kernel_index.py)"));
        let heading = format!("### `{}`", k.name);
        assert!(
            text.lines().any(|l| l == heading),
            "{page} has no heading {heading} (run python3 tools/kernel_index.py)"
        );
    }
}
