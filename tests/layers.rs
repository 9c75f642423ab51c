//! The sweep crate's imports point one way: from each module only to modules of its own or an
//! earlier pipeline layer, and never around a cycle. Read off the source's `crate::` and
//! `super::` paths (test code aside), so a new import that breaks the layering fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, first to last, as `lib.rs` states them.
const LAYERS: [&str; 10] = [
    "config", "plan", "store", "analysis", "adaptive", "run", "report", "export", "cluster", "main",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every non-test source file as a module path (`run::sweep`; a folder's `mod.rs` is the folder).
fn modules() -> BTreeMap<Vec<String>, PathBuf> {
    let mut modules = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(src()).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            // `lib.rs` is the root; test modules and test support are test code.
            if parts == ["lib"] || parts.last().is_some_and(|p| p == "tests" || p == "test_support") {
                continue;
            }
            modules.insert(parts, path);
        }
    }
    modules
}

/// The module paths a file names after `crate::` (`loraplus::` in the binary), `super::` or,
/// in a folder's `mod.rs`, `use child::` (brace lists expanded one level), resolved against
/// `module`, the file's own module.
fn imports(text: &str, module: &[String], is_folder: bool) -> Vec<Vec<String>> {
    // Test code may reach anywhere, and comments may name any module.
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .map(|line| line.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let parent = &module[..module.len().saturating_sub(1)];
    let roots = ["crate::", "loraplus::", "super::", "use ", "pub use "];
    let starts = roots.iter().flat_map(|root| code.match_indices(root));
    let mut out = Vec::new();
    for (start, root) in starts {
        let mut base: Vec<String> = match root {
            "super::" => parent.to_vec(),
            // A child module used by its folder's `mod.rs`.
            "use " | "pub use " if is_folder => module.to_vec(),
            "use " | "pub use " => continue,
            _ => Vec::new(),
        };
        let rest = &code[start + root.len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        base.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
        if rest[path.len()..].starts_with('{') && path.ends_with("::") {
            let inner = &rest[path.len() + 1..rest.find('}').unwrap()];
            for item in inner.split(',') {
                let mut full = base.clone();
                full.extend(
                    item.trim()
                        .split("::")
                        .next()
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                );
                out.push(full);
            }
        } else {
            out.push(base);
        }
    }
    out
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains_key(p))
}

fn layer(module: &[String]) -> usize {
    LAYERS
        .iter()
        .position(|l| *l == module[0])
        .unwrap_or_else(|| panic!("module {module:?} is in no layer of {LAYERS:?}"))
}

#[test]
fn imports_point_to_earlier_layers_and_never_around_a_cycle() {
    let modules = modules();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, path) in &modules {
        let text = fs::read_to_string(path).unwrap();
        let is_folder = path.ends_with("mod.rs");
        let targets = edges.entry(module.clone()).or_default();
        for import in imports(&text, module, is_folder) {
            if let Some(target) = resolve(&import, &modules).filter(|t| t != module) {
                targets.insert(target);
            }
        }
    }
    let name = |m: &Vec<String>| m.join("::");
    let mut backwards = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if layer(to) > layer(from) {
                backwards.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    assert!(backwards.is_empty(), "imports of a later layer: {backwards:?}");

    // Depth-first search for a cycle, reporting the first found.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            return Some(path[i..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        let cycle = visit(module, &edges, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "an import cycle: {:?}",
            cycle.unwrap().iter().map(name).collect::<Vec<_>>()
        );
    }
    let count: usize = edges.values().map(BTreeSet::len).sum();
    eprintln!(
        "{} modules, {count} imports between them, none backwards, no cycle",
        edges.len()
    );
    for (from, targets) in &edges {
        eprintln!(
            "  {:<20} -> {}",
            name(from),
            targets.iter().map(name).collect::<Vec<_>>().join(", ")
        );
    }
}
