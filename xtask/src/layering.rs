//! The layering of `hypervisor/src/kernel/`, checked on the host: the
//! files of `kernel/` import each other without a cycle (so they stack in
//! layers, each importing only files below it), and nothing in
//! `hypervisor/src/drivers/` imports `crate::kernel`; of `kernel/`, only
//! `mod.rs` (the boot CPU's entry, installing their hooks) names the
//! self-tests.
//!
//! An import is any path through `super::` or `crate::kernel::` in a
//! kernel file (in a `use` or inline, `super::{a, b::c}` groups included;
//! comments ignored); in `kernel/mod.rs`, a path through one of its
//! submodules. A `super::` path to something that is not a file of
//! `kernel/` names an item of `mod.rs`, so it is an import of `mod`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// File (module name, `mod` for `mod.rs`) -> the kernel files it imports.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The text without `//` comments (doc comments included).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment of each item of a `{a, b::c, d::{e, f}}` group
/// starting at `s` (just after the `{`).
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if depth == 0 && at_item_start && is_ident(c) => {
                let end = s[i..]
                    .find(|c: char| !is_ident(c))
                    .map_or(s.len(), |n| i + n);
                heads.push(s[i..end].to_string());
                at_item_start = false;
                while chars.peek().is_some_and(|&(j, _)| j < end) {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    heads
}

/// The first segments of every path after `prefix` in `text` (a `{}`
/// group gives each of its items' first segments).
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(prefix) {
        let start = from + pos;
        let rest = &text[start + prefix.len()..];
        from = start + prefix.len();
        // `super::` must not be the tail of a longer path (`x::super::`).
        if start > 0 && text[..start].ends_with(|c: char| is_ident(c) || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            out.extend(group_heads(group));
        } else {
            let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            if end > 0 {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// The import graph of the kernel files `files` (module name, text).
pub fn graph(files: &[(String, String)]) -> Graph {
    let names: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let mut g = Graph::new();
    for (name, text) in files {
        let text = strip_comments(text);
        let mut deps = BTreeSet::new();
        let add = |deps: &mut BTreeSet<String>, head: &str| {
            let target = if names.contains(head) { head } else { "mod" };
            if target != name && head != "*" && head != "self" {
                deps.insert(target.to_string());
            }
        };
        if name == "mod" {
            for m in &names {
                if *m != "mod" && !paths_after(&text, &format!("{m}::")).is_empty() {
                    deps.insert((*m).to_string());
                }
            }
        } else {
            for head in paths_after(&text, "super::") {
                add(&mut deps, &head);
            }
        }
        for head in paths_after(&text, "crate::kernel::") {
            add(&mut deps, &head);
        }
        g.insert(name.clone(), deps);
    }
    g
}

/// A cycle of `g` (its files in order, the first repeated at the end), if any.
pub fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit<'a>(
        g: &'a Graph,
        n: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(n, Mark::Open);
        stack.push(n);
        for d in g.get(n).into_iter().flatten() {
            match marks.get(d.as_str()).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let i = stack.iter().position(|s| *s == d).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(g, d, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            let mut stack = Vec::new();
            if let Some(c) = visit(g, n, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// The layers of an acyclic `g`, bottom first: each file sits one above
/// the highest file it imports.
pub fn layers(g: &Graph) -> Vec<Vec<String>> {
    fn level(g: &Graph, n: &str, memo: &mut BTreeMap<String, usize>) -> usize {
        if let Some(&l) = memo.get(n) {
            return l;
        }
        let l = g
            .get(n)
            .into_iter()
            .flatten()
            .map(|d| level(g, d, memo) + 1)
            .max()
            .unwrap_or(0);
        memo.insert(n.to_string(), l);
        l
    }
    let mut memo = BTreeMap::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    for n in g.keys() {
        let l = level(g, n, &mut memo);
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(n.clone());
    }
    out
}

/// The `.rs` files directly in `dir`, as (module name, text).
pub fn read_dir(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

/// Every `.rs` file under `dir` (recursively) whose code names `crate::kernel`.
pub fn files_importing_kernel(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_importing_kernel(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if strip_comments(&text).contains("crate::kernel") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hypervisor/src")
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn kernel_files_import_each_other_without_a_cycle() {
        let g = graph(&read_dir(&src().join("kernel")));
        assert!(g.len() > 10, "kernel/ files not found: {g:?}");
        if let Some(cycle) = find_cycle(&g) {
            for (file, deps) in &g {
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                println!("{file}: {}", deps.join(" "));
            }
            panic!(
                "import cycle in hypervisor/src/kernel/: {}",
                cycle.join(" -> ")
            );
        }
        for (i, layer) in layers(&g).iter().enumerate() {
            println!("layer {i}: {}", layer.join(" "));
        }
    }

    #[test]
    fn drivers_import_nothing_from_the_kernel() {
        let bad = files_importing_kernel(&src().join("drivers"));
        assert!(
            bad.is_empty(),
            "drivers/ files importing crate::kernel: {bad:?}"
        );
    }

    #[test]
    fn only_the_entry_names_the_self_tests() {
        // The self-tests (`src/selftest.rs`) sit on top of the kernel; the
        // kernel reaches them only through `kernel/hooks.rs`, installed by
        // the boot CPU's entry in `kernel/mod.rs`.
        let naming: Vec<String> = read_dir(&src().join("kernel"))
            .into_iter()
            .filter(|(_, text)| strip_comments(text).contains("selftest::"))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(naming, ["mod"], "kernel/ files naming the self-tests");
    }

    #[test]
    fn use_groups_inline_paths_and_mod_items_are_imports() {
        let g = graph(&files(&[
            (
                "mod",
                "pub mod a; pub mod b; fn f() { a::go() }\npub fn halt() {}",
            ),
            ("a", "use super::{b, c::{X, Y}};\nfn g() { super::halt() }"),
            ("b", "fn h() { crate::kernel::c::z(); } // super::a::no"),
            ("c", "use super::*;\nuse crate::mm::x;"),
        ]));
        let deps = |n: &str| g[n].iter().cloned().collect::<Vec<_>>();
        assert_eq!(deps("mod"), ["a"]);
        assert_eq!(deps("a"), ["b", "c", "mod"]);
        assert_eq!(deps("b"), ["c"]);
        assert!(deps("c").is_empty());
    }

    #[test]
    fn a_cycle_is_found_and_named_in_order() {
        let g = graph(&files(&[
            ("a", "use super::b;"),
            ("b", "fn f() { super::c::g() }"),
            ("c", "use super::{a, d};"),
            ("d", ""),
        ]));
        assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
        let acyclic = graph(&files(&[
            ("a", "use super::b;"),
            ("b", "use super::c;"),
            ("c", ""),
        ]));
        assert_eq!(find_cycle(&acyclic), None);
        assert_eq!(layers(&acyclic), [vec!["c"], vec!["b"], vec!["a"]]);
    }
}
