//! The arrows between klab's top-level modules run one way: a module may use
//! modules of lower layers, never one of its own layer or above. This test
//! reads every file under `src/` (its non-test part: everything before the
//! first `#[cfg(test)]`) and fails on an import that points up or sideways.
//! `docs/ARCHITECTURE.md` shows the same table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (module, layer), bottom up.
const LAYERS: &[(&str, u8)] = &[
    // Plain helpers with no klab imports of their own.
    ("units", 0),
    ("error", 0),
    ("random", 0),
    ("process", 0),
    ("provenance", 0),
    ("term", 0),
    ("infile", 0),
    // Ctrl-C (it prints through term); plain data.
    ("cancel", 1),
    ("model", 1),
    // Histograms, tables, plots, result files, progress; the event bus.
    ("stats", 2),
    ("events", 2),
    // The network between clients and local brokers (Toxiproxy).
    ("net", 2),
    // The broker (config, local processes, Admin API) and the load
    // (producer, consumer, payload) know nothing of each other.
    ("broker", 3),
    ("load", 3),
    // One measurement.
    ("step", 4),
    // The capacity search (a state machine over measurements).
    ("capacity", 5),
    // Search strategies over measurements (the capacity objective runs
    // capacity searches).
    ("tuner", 6),
    // What runs measurements: labs and sessions, the bench.
    ("lab", 7),
    ("bench", 7),
    // The Kubernetes target (a lab target itself).
    ("k8s", 8),
    ("ui", 8),
    // Command-line arguments, what the commands share (so no command
    // imports another), then the commands.
    ("cli", 9),
    ("app", 10),
    ("cmd", 11),
];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs
/// and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module an exported macro (`crate::NAME!`) belongs to.
fn macro_home(name: &str) -> Option<&'static str> {
    match name {
        "usage" => Some("error"),
        "out" | "outln" | "errln" => Some("term"),
        "add_counts" => Some("stats"),
        _ => None,
    }
}

/// Every `crate::NAME` in `text` (a macro counts as its module's).
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, macro_home(&name).map_or(name, str::to_string)));
            }
            rest = tail;
        }
    }
    out
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    for f in &files {
        let Some(module) = module_of(&src, f) else {
            continue;
        };
        seen.insert(module.clone(), ());
        let Some(mine) = layer_of(&module) else {
            problems.push(format!(
                "{}: module '{module}' has no layer in tests/layers.rs (and docs/ARCHITECTURE.md)",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (line, used) in imports(code) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < mine => {}
                Some(l) => problems.push(format!(
                    "{}:{line}: {module} (layer {mine}) uses crate::{used} (layer {l})",
                    f.display()
                )),
                None => problems.push(format!(
                    "{}:{line}: crate::{used} is not a module with a layer",
                    f.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    assert!(seen.len() >= 10, "read too few modules: {seen:?}");
}

#[test]
fn the_check_sees_an_upward_import() {
    let found = imports("use crate::cmd::lab;\nlet x = crate::usage!(\"x\"); // crate::k8s\n");
    assert_eq!(
        found,
        vec![(1, "cmd".to_string()), (2, "error".to_string())]
    );
}

/// Issue 11's size rule: a file's non-test part (everything before its
/// first `#[cfg(test)]`) stays at or under this many lines, so each file
/// holds one concept a reader can take in.
const MAX_LINES: usize = 700;

#[test]
fn no_source_file_passes_the_line_limit_outside_its_tests() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let n = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or("")
                .lines()
                .count();
            (n > MAX_LINES).then(|| format!("{}: {n} lines outside its tests", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines; split by concept (docs/ARCHITECTURE.md):\n{}",
        long.join("\n")
    );
    assert!(files.len() > 50, "read too few files: {}", files.len());
}

/// The commands in `src/cmd/` do not import each other (what they share
/// lives in `app`, below them): `super::NAME::` or `crate::cmd::NAME::`
/// where NAME is another command's file.
#[test]
fn no_command_imports_another() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cmd");
    let commands: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".rs")
                .filter(|n| *n != "mod")
                .map(str::to_string)
        })
        .collect();
    assert!(commands.len() > 10, "{commands:?}");
    let mut found = Vec::new();
    for file in &commands {
        let text = std::fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for other in commands.iter().filter(|c| *c != file) {
            for spelled in [
                format!("super::{other}::"),
                format!("crate::cmd::{other}::"),
            ] {
                if code.contains(&spelled) || code.contains(&format!("use super::{other};")) {
                    found.push(format!("cmd/{file}.rs uses {spelled}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a command imports another; move what they share to src/app/:\n{}",
        found.join("\n")
    );
}
