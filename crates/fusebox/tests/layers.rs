//! The layer rules of docs/ARCHITECTURE.md, checked on the source tree: each top-level module
//! of the crate imports only from layers below it (no module cycle), `unsafe` appears only in
//! `sys` and `transport`, and no code outside `abi` and `wire` reads request or reply headers
//! at byte offsets. Test modules (`#[cfg(test)]` at the end of a file) are not checked.

use std::path::{Path, PathBuf};

/// The layers, bottom up; a module may import its own layer and those below it.
const LAYERS: &[(&str, u32)] =
    &[("abi", 0), ("sys", 0), ("wire", 1), ("transport", 2), ("session", 3), ("fs", 4)];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, r)| r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code lines of a file: comments dropped, the test module at its end cut off.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("").to_string();
        if !code.trim().is_empty() {
            lines.push((n + 1, code));
        }
    }
    lines
}

/// Every `(file, line, layer used)` of `crate::<layer>` paths in the crate's code.
fn crate_paths(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .map(|(i, _)| line[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A source file of one layer: its top-level module, path and code lines.
type LayerFile = (String, PathBuf, Vec<(usize, String)>);

/// Every file below a layer's folder.
fn layered_files() -> Vec<LayerFile> {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let top = f.strip_prefix(&root).unwrap().components().next()?.as_os_str().to_str()?.to_string();
            let top = top.trim_end_matches(".rs").to_string();
            rank(&top)?;
            let lines = code_lines(&f);
            Some((top, f, lines))
        })
        .collect()
}

#[test]
fn each_layer_imports_only_layers_below_it() {
    let mut wrong = Vec::new();
    for (top, file, lines) in layered_files() {
        let own = rank(&top).unwrap();
        for (n, line) in &lines {
            for used in crate_paths(line) {
                if let Some(r) = rank(&used) {
                    if r > own || (r == own && used != top) {
                        wrong.push(format!("{}:{n}: {top} uses crate::{used}", file.display()));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layer order:\n{}", wrong.join("\n"));
}

/// `file:line: code` of every code line outside the layers `allowed` that `found` matches.
fn lines_outside(allowed: &[&str], found: impl Fn(&str) -> bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for (top, file, lines) in layered_files() {
        if allowed.contains(&top.as_str()) {
            continue;
        }
        for (n, line) in lines.iter().filter(|(_, l)| found(l)) {
            wrong.push(format!("{}:{n}: {}", file.display(), line.trim()));
        }
    }
    wrong
}

#[test]
fn unsafe_only_in_sys_and_transport() {
    let wrong = lines_outside(&["sys", "transport"], |l| l.contains("unsafe ") || l.contains("unsafe{"));
    assert!(wrong.is_empty(), "unsafe outside sys/ and transport/:\n{}", wrong.join("\n"));
}

#[test]
fn headers_are_read_through_typed_views_outside_abi_and_wire() {
    let wrong = lines_outside(&["abi", "wire"], |l| l.contains("from_ne_bytes(") && l.contains(".."));
    assert!(wrong.is_empty(), "header fields read at byte offsets:\n{}", wrong.join("\n"));
}
