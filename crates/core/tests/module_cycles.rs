//! No import cycles between the top-level modules of `crates/core` and `src-tauri` (issue 14).
//!
//! A cycle between two modules means neither can be read, tested or moved without the other;
//! they are one module in two files. This test reads the sources (no compiler involved): every
//! path that starts at the crate root — `crate::x`, `crate::{x, y::z}`, or `super::` climbing
//! back to the root — is an edge from the module it is written in to the top-level module it
//! names. A name the root re-exports (`pub use shell::Shell;` in lib.rs) leads to the module it
//! comes from, so a re-export does not hide a cycle. Test modules count: `#[cfg(test)]` code
//! that imports a module depends on it as much as any other code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Removes comments, string and char literals (their text could look like paths), keeping
/// lifetimes and the rest of the code.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            // Block comments nest in Rust.
            let mut depth = 0usize;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            i += j;
        } else if !prev_ident && (rest.starts_with("r\"") || rest.starts_with("r#")) {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            if rest.as_bytes().get(1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let end = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&end)
                    .map_or(rest.len() - body, |e| e + end.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap_or(1);
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of a char literal at the start of `s` (`'a'`, `'\n'`, `'\u{1F600}'`, `'é'`), or
/// `None` for a lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    let (_, c) = chars.next()?;
    if c == '\\' {
        // The escaped character may itself be a quote: search after it.
        let close = s.get(3..)?.find('\'')?;
        return Some(3 + close + 1);
    }
    let (j, q) = chars.next()?;
    (q == '\'').then_some(j + 1)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    PathSep,
}

fn tokens(src: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Ident(src[i..end].to_owned()));
        } else if c == ':' && chars.peek().map(|&(_, d)| d) == Some(':') {
            chars.next();
            out.push(Tok::PathSep);
        } else if !c.is_whitespace() {
            out.push(Tok::Punct(c));
        }
    }
    out
}

/// The first segment of every path in a `{ ... }` group starting at `toks[i]` (the `{`).
fn group_heads(toks: &[Tok], i: usize, heads: &mut Vec<String>) {
    let mut depth = 0usize;
    let mut expect_head = true;
    for tok in &toks[i..] {
        match tok {
            Tok::Punct('{') => {
                depth += 1;
                expect_head = depth == 1;
            }
            Tok::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            Tok::Punct(',') if depth == 1 => expect_head = true,
            Tok::Ident(name) if expect_head => {
                heads.push(name.clone());
                expect_head = false;
            }
            _ => expect_head = false,
        }
    }
}

/// The top-level modules one file's code reaches. `module_path` is the file's own module
/// (`["diagnose", "rules"]` for `diagnose/rules/mod.rs`).
fn reached(src: &str, module_path: &[String]) -> Vec<String> {
    let toks = tokens(&strip(src));
    let mut heads = Vec::new();
    // Inline `mod x { ... }` blocks: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Tok::Ident(kw) if kw == "crate" || kw == "super" => {
                // `$crate` (macros) and `a::crate` are not paths from here; `pub(crate)` has no `::`.
                let after_sep = i > 0 && matches!(toks[i - 1], Tok::PathSep | Tok::Punct('$'));
                if after_sep || toks.get(i + 1) != Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let mut j = i;
                let at_root = if kw == "crate" {
                    j += 2;
                    true
                } else {
                    let mut up = 0;
                    while toks.get(j) == Some(&Tok::Ident("super".into()))
                        && toks.get(j + 1) == Some(&Tok::PathSep)
                    {
                        up += 1;
                        j += 2;
                    }
                    module_path.len() + inline.len() <= up
                };
                if at_root {
                    match toks.get(j) {
                        Some(Tok::Ident(name)) => heads.push(name.clone()),
                        Some(Tok::Punct('{')) => group_heads(&toks, j, &mut heads),
                        _ => {}
                    }
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// The names lib.rs re-exports, each with the top-level module it comes from.
fn root_reexports(lib_rs: &str) -> BTreeMap<String, String> {
    let toks = tokens(&strip(lib_rs));
    let mut out = BTreeMap::new();
    for (i, tok) in toks.iter().enumerate() {
        if *tok != Tok::Ident("use".into()) || i == 0 || toks[i - 1] != Tok::Ident("pub".into()) {
            continue;
        }
        let (Some(Tok::Ident(module)), Some(Tok::PathSep)) = (toks.get(i + 1), toks.get(i + 2))
        else {
            continue;
        };
        let mut names = Vec::new();
        match toks.get(i + 3) {
            Some(Tok::Punct('{')) => group_heads(&toks, i + 3, &mut names),
            Some(Tok::Ident(name)) => names.push(name.clone()),
            _ => {}
        }
        for name in names {
            out.insert(name, module.clone());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module graph of the crate whose sources are under `src` (lib.rs and its modules).
fn graph(src: &Path) -> Graph {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut modules: BTreeMap<String, Vec<(Vec<String>, PathBuf)>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let mut path: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        if path.last().is_some_and(|l| l == "mod") {
            path.pop();
        }
        if path.len() == 1 && (path[0] == "lib" || path[0] == "main") {
            continue;
        }
        modules
            .entry(path[0].clone())
            .or_default()
            .push((path, file));
    }
    let mut g = Graph::new();
    for (top, files) in &modules {
        let edges = g.entry(top.clone()).or_default();
        for (path, file) in files {
            let text = fs::read_to_string(file).expect("readable source");
            for head in reached(&text, path) {
                let target = if modules.contains_key(&head) {
                    Some(head)
                } else {
                    reexports.get(&head).cloned()
                };
                if let Some(target) = target.filter(|t| t != top) {
                    edges.insert(target);
                }
            }
        }
    }
    g
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One line per cycle, with the edges inside it, for the failure message.
fn describe(g: &Graph, comps: &[Vec<String>]) -> String {
    let mut out = String::new();
    for comp in comps {
        out.push_str(&format!("cycle among {}:\n", comp.join(", ")));
        for from in comp {
            for to in g[from].iter().filter(|t| comp.contains(t)) {
                out.push_str(&format!("  {from} -> {to}\n"));
            }
        }
    }
    out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assert_acyclic(src: &Path, known: &[(&str, &str)]) {
    let mut g = graph(src);
    for (from, to) in known {
        let removed = g.get_mut(*from).is_some_and(|e| e.remove(*to));
        assert!(
            removed,
            "{from} -> {to} no longer exists: remove it from the known back edges"
        );
    }
    assert!(g.len() > 5, "found too few modules under {}", src.display());
    let comps = cycles(&g);
    let edges: usize = g.values().map(BTreeSet::len).sum();
    println!(
        "{}: {} modules, {} edges ({} known back edges left out), {} cycles",
        src.display(),
        g.len(),
        edges,
        known.len(),
        comps.len()
    );
    assert!(comps.is_empty(), "{}", describe(&g, &comps));
}

#[test]
fn core_modules_have_no_import_cycles() {
    assert_acyclic(&workspace().join("crates/core/src"), &[]);
}

#[test]
fn tray_modules_have_no_import_cycles() {
    assert_acyclic(&workspace().join("src-tauri/src"), &[]);
}

#[test]
fn paths_from_the_root_are_edges_and_others_are_not() {
    let src = r#"
        use crate::{alerts::Alert, shell::{Shell, Status}};
        use super::tray;            // from a top-level file: the root
        use std::sync::Arc;
        pub(crate) fn f() { crate::launch::go(); let s = "crate::fake"; } // crate::comment
        macro_rules! m { () => { $crate::macro_only }; }
        mod tests {
            use super::*;           // the file's own module
            use super::super::view; // the root again
        }
    "#;
    let heads = reached(src, &["here".to_owned()]);
    assert_eq!(heads, ["alerts", "shell", "tray", "launch", "view"]);
    // Two levels down, one `super` stays inside the top-level module.
    assert!(reached("use super::ctx::Ctx;", &["diagnose".into(), "rules".into()]).is_empty());
    assert_eq!(
        reached(
            "use super::super::fit;",
            &["diagnose".into(), "rules".into()]
        ),
        ["fit"]
    );
}

#[test]
fn a_cycle_through_a_reexport_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    fs::write(src.join("lib.rs"), "mod a; mod b; mod c; pub use a::Thing;").expect("write");
    fs::write(src.join("a.rs"), "use crate::b::f;").expect("write");
    fs::create_dir(src.join("b")).expect("mkdir");
    fs::write(src.join("b/mod.rs"), "mod inner;").expect("write");
    fs::write(src.join("b/inner.rs"), "fn g() { crate::Thing::new(); }").expect("write");
    fs::write(src.join("c.rs"), "use crate::a::Thing;").expect("write");
    let g = graph(src);
    assert_eq!(cycles(&g), [vec!["a".to_owned(), "b".to_owned()]]);
    // Without the re-export's edge there is none.
    fs::write(src.join("b/inner.rs"), "fn g() {}").expect("write");
    assert!(cycles(&graph(src)).is_empty());
}
