//! Keeps the module structure honest, in the spirit of rust-analyzer's tidy
//! tests: reads the files under `src/` (plain std, no parser crate) and
//! checks that
//! - the crate's top-level modules import each other without a cycle;
//! - the modules of one directory (siblings) import each other without a
//!   cycle (edges to and from the directory's own `mod.rs` do not count);
//! - no function outside tests is over 100 lines, except allowlisted tables.
//!
//! An edge A -> B: a file in A (or below it) names a path into B, in a
//! `use` (groups expanded) or inline: `crate::b::...`, or `super::...`
//! climbing out of A (resolved through inline modules). A path to an item
//! the parent defines or re-exports is no edge to a sibling. Test code
//! (`#[cfg(test)]` items, `tests.rs` files) is left out of all three
//! checks: a test may build its inputs with a sibling module.
//!
//! Each check prints every violation with file:line, then fails. The scanner
//! blanks comments and string and char literals first, so a doc comment
//! naming `crate::cli` is no edge.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

/// The longest a function in `src/` may be, in lines from `fn` to its
/// closing brace.
const MAX_FN_LINES: usize = 100;

/// Functions allowed over [`MAX_FN_LINES`]: (file, function, why). Only
/// deliberate tables belong here, each with its reason.
const LONG_FN_ALLOWLIST: &[(&str, &str, &str)] = &[];

#[test]
fn no_import_cycle_between_top_level_modules() {
    let files = read_src();
    let graph = Graph::of(&files, Level::TopLevel);
    report("import cycles among the top-level modules", graph.cycles());
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    let files = read_src();
    let graph = Graph::of(&files, Level::Siblings);
    report(
        "import cycles among the modules of one directory",
        graph.cycles(),
    );
}

#[test]
fn no_long_functions() {
    let files = read_src();
    report(
        &format!("functions over {MAX_FN_LINES} lines (split them into named steps)"),
        long_functions(&files, MAX_FN_LINES, LONG_FN_ALLOWLIST),
    );
}

fn report(what: &str, violations: Vec<String>) {
    if !violations.is_empty() {
        panic!(
            "{what} ({} found):\n\n{}",
            violations.len(),
            violations.join("\n")
        );
    }
}

// --- the files ----------------------------------------------------------------

/// One file of the crate, scanned.
struct SourceFile {
    /// `src/netlink/dump.rs`.
    path: String,
    /// Its module path: `["netlink", "dump"]`; `None` for `main.rs`, which
    /// is another crate (the binary).
    module: Option<Vec<String>>,
    tokens: Vec<Token>,
}

impl SourceFile {
    fn new(path: &str, text: &str) -> SourceFile {
        let rel = path.strip_prefix("src/").unwrap_or(path);
        let mut module: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_string)
            .collect();
        let module = if rel == "main.rs" {
            None
        } else {
            if rel == "lib.rs" || module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            Some(module)
        };
        SourceFile {
            path: path.to_string(),
            module,
            tokens: tokenize(&blank_comments_and_literals(text)),
        }
    }

    /// Whether the file holds tests only: `tests.rs`, or a module a
    /// `#[cfg(test)] mod name;` declares.
    fn is_test(&self, test_modules: &BTreeSet<Vec<String>>) -> bool {
        self.path.ends_with("/tests.rs")
            || self
                .module
                .as_ref()
                .is_some_and(|m| test_modules.iter().any(|t| m.starts_with(t)))
    }
}

fn read_src() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rs(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let rel = p.strip_prefix(root).expect("under the manifest dir");
            SourceFile::new(&rel.to_string_lossy().replace('\\', "/"), &text)
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

// --- the scanner ------------------------------------------------------------

/// The text with every comment and every string, byte-string and char
/// literal replaced by spaces; newlines kept, so lines still count.
fn blank_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[char]| {
        out.extend(s.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        let end = if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            // Line comment, doc comments included.
            (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len())
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            block_comment_end(&c, i)
        } else if c[i] == '"' {
            string_end(&c, i + 1)
        } else if !prev_ident && (c[i] == 'r' || c[i] == 'b' || c[i] == 'c') {
            match raw_or_prefixed_string_end(&c, i) {
                Some(end) => end,
                None => {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
            }
        } else if c[i] == '\'' {
            match char_literal_end(&c, i) {
                Some(end) => end,
                None => {
                    // A lifetime or a label.
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        };
        blank(&mut out, &c[i..end]);
        i = end;
    }
    out
}

/// The end (exclusive) of the block comment at `i`; they nest.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    c.len()
}

/// The end (exclusive) of a string whose body starts at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// `b"..."`, `c"..."`, `r"..."`, `r#"..."#`, `br#"..."#`, `b'x'` at `i`.
fn raw_or_prefixed_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if c[j] == 'b' || c[j] == 'c' {
        j += 1;
        match c.get(j) {
            Some('"') => return Some(string_end(c, j + 1)),
            Some('\'') if c[i] == 'b' => return char_literal_end(c, j),
            Some('r') => {}
            _ => return None,
        }
    }
    // c[j] == 'r': count the hashes.
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// The end of the char literal at `i`, `None` for a lifetime or a label.
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    match c.get(i + 1)? {
        '\\' => {
            // '\n', '\'', '\x7f', '\u{1F600}'
            let close = (i + 3..c.len()).find(|&j| c[j] == '\'')?;
            Some(close + 1)
        }
        _ if c.get(i + 2) == Some(&'\'') => Some(i + 3),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers (and numbers), `::`, and single punctuation characters.
fn tokenize(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            tokens.push(Token {
                text: c[start..i].iter().collect(),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            tokens.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    tokens
}

fn is_ident(t: &Token) -> bool {
    t.text
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

// --- paths ----------------------------------------------------------------------

/// A `crate::` or `super::` path in a file, resolved to the module path it
/// names (the items after the module are kept: they do no harm).
#[derive(Clone, Debug)]
struct Reference {
    line: usize,
    /// As written, groups expanded: `crate::error::format_error`.
    text: String,
    /// From the crate root: `["cli", "format_error"]`.
    target: Vec<String>,
    /// Inside a `#[cfg(test)]` item.
    in_test: bool,
}

/// What one scan of a file finds.
#[derive(Default)]
struct Scan {
    references: Vec<Reference>,
    /// Modules that `#[cfg(test)] mod name;` declares.
    test_modules: BTreeSet<Vec<String>>,
    /// Token ranges of `#[cfg(test)]` items.
    test_ranges: Vec<(usize, usize)>,
}

/// Walks a file's tokens: its references (with `super` resolved through
/// inline modules) and its test items.
fn scan(file: &SourceFile) -> Scan {
    let t = &file.tokens;
    let module = file.module.clone().unwrap_or_default();
    let mut out = Scan::default();
    // Inline modules we are in: (name, the brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < t.len() {
        match t[i].text.as_str() {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "mod" if t.get(i + 2).is_some_and(|b| b.text == "{") => {
                inline.push((t[i + 1].text.clone(), depth + 1));
            }
            "#" if is_cfg_test(t, i) => {
                let end = item_end(t, i);
                out.test_ranges.push((i, end));
                if let Some(name) = out_of_line_mod(t, i, end) {
                    let mut m = module.clone();
                    m.extend(inline.iter().map(|(n, _)| n.clone()));
                    m.push(name);
                    out.test_modules.insert(m);
                }
            }
            "crate" | "super" if file.module.is_some() && starts_path(t, i) => {
                let mut base = module.clone();
                base.extend(inline.iter().map(|(n, _)| n.clone()));
                let in_test = out.test_ranges.iter().any(|&(a, b)| a <= i && i <= b);
                let (paths, next) = use_tree(t, i);
                for segments in paths {
                    if let Some(mut r) = resolve(&base, &segments, t[i].line) {
                        r.in_test = in_test;
                        out.references.push(r);
                    }
                }
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Scans every file; with the modules that hold tests only.
fn scan_all(files: &[SourceFile]) -> (Vec<Scan>, BTreeSet<Vec<String>>) {
    let scans: Vec<Scan> = files.iter().map(scan).collect();
    let test_modules = scans
        .iter()
        .flat_map(|s| s.test_modules.iter().cloned())
        .collect();
    (scans, test_modules)
}

/// `crate::` or `super::` at `i`, not `$crate::` and not in the middle of
/// a path.
fn starts_path(t: &[Token], i: usize) -> bool {
    let before = i.checked_sub(1).map(|p| t[p].text.as_str());
    t.get(i + 1).is_some_and(|n| n.text == "::") && !matches!(before, Some("$" | "::"))
}

/// `#[cfg(test)]` at `i`.
fn is_cfg_test(t: &[Token], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    t.len() >= i + want.len() && want.iter().zip(&t[i..]).all(|(w, t)| t.text == *w)
}

/// The last token of the item that the attribute at `i` belongs to: the
/// first `;` outside brackets, or the `}` closing its first block.
fn item_end(t: &[Token], i: usize) -> usize {
    let mut depth = 0i32;
    // Skip this and any further attributes.
    let mut j = i;
    while t.get(j).is_some_and(|x| x.text == "#") {
        j += 1;
        let mut d = 0;
        while j < t.len() {
            match t[j].text.as_str() {
                "[" => d += 1,
                "]" => {
                    d -= 1;
                    if d == 0 {
                        j += 1;
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
    }
    while j < t.len() {
        match t[j].text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" => depth -= 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            ";" if depth == 0 => return j,
            _ => {}
        }
        j += 1;
    }
    t.len().saturating_sub(1)
}

/// `mod name;` as the item between `start` and `end`.
fn out_of_line_mod(t: &[Token], start: usize, end: usize) -> Option<String> {
    let m = (start..end).find(|&j| t[j].text == "mod")?;
    (m + 2 == end && t[end].text == ";").then(|| t[m + 1].text.clone())
}

/// The paths of the use tree (or inline path) starting at `i`, each as its
/// segments, and the index after it. `a::{b, c::{d, self}}` is `a::b`,
/// `a::c::d`, `a::c`; a glob ends the path at its module.
fn use_tree(t: &[Token], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix: Vec<String> = Vec::new();
    loop {
        match t.get(i) {
            Some(tok) if is_ident(tok) => {
                if tok.text != "self" {
                    prefix.push(tok.text.clone());
                }
                i += 1;
            }
            _ => return (vec![prefix], i),
        }
        if t.get(i).is_none_or(|x| x.text != "::") {
            return (vec![prefix], i);
        }
        i += 1;
        match t.get(i).map(|x| x.text.as_str()) {
            Some("{") => {
                let mut paths = Vec::new();
                i += 1;
                loop {
                    match t.get(i).map(|x| x.text.as_str()) {
                        None => return (paths, i),
                        Some("}") => return (paths, i + 1),
                        Some(",") => i += 1,
                        Some(_) => {
                            let (inner, next) = use_tree(t, i);
                            paths.extend(inner.into_iter().map(|s| {
                                let mut p = prefix.clone();
                                p.extend(s);
                                p
                            }));
                            // Skip `as name` and anything else up to the next item.
                            i = next;
                            while t.get(i).is_some_and(|x| x.text != "," && x.text != "}") {
                                i += 1;
                            }
                        }
                    }
                }
            }
            Some("*") => return (vec![prefix], i + 1),
            _ => {}
        }
    }
}

/// The module path `segments` (starting with `crate` or `super`s) names,
/// seen from the module `base`.
fn resolve(base: &[String], segments: &[String], line: usize) -> Option<Reference> {
    let text = segments.join("::");
    let (target, rest) = match segments.first()?.as_str() {
        "crate" => (Vec::new(), &segments[1..]),
        "super" => {
            let ups = segments.iter().take_while(|s| *s == "super").count();
            let keep = base.len().checked_sub(ups)?;
            (base[..keep].to_vec(), &segments[ups..])
        }
        _ => return None,
    };
    let mut target = target;
    target.extend(rest.iter().cloned());
    Some(Reference {
        line,
        text,
        target,
        in_test: false,
    })
}

// --- the import graph ----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The crate's top-level modules: `cli -> netlink`.
    TopLevel,
    /// The modules of each directory: `netlink::dump -> netlink::client`.
    Siblings,
}

/// Edges between modules of one parent: (parent, from, to) -> where.
struct Graph {
    edges: BTreeMap<(Vec<String>, String, String), Vec<String>>,
}

impl Graph {
    fn of(files: &[SourceFile], level: Level) -> Graph {
        // Every module's children that are files (or directories).
        let mut children: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
        for m in files.iter().filter_map(|f| f.module.as_ref()) {
            for n in 0..m.len() {
                children
                    .entry(m[..n].to_vec())
                    .or_default()
                    .insert(m[n].clone());
            }
        }
        let (scans, test_modules) = scan_all(files);
        let mut edges: BTreeMap<(Vec<String>, String, String), Vec<String>> = BTreeMap::new();
        for (file, scan) in files.iter().zip(scans) {
            let Some(module) = &file.module else { continue };
            if file.is_test(&test_modules) {
                continue;
            }
            for r in scan.references.into_iter().filter(|r| !r.in_test) {
                // Each parent whose child holds this file: the root's for
                // top-level modules, every directory's for siblings.
                for n in 0..module.len() {
                    let parent = &module[..n];
                    if (n == 0) != (level == Level::TopLevel) {
                        continue;
                    }
                    let from = &module[n];
                    let Some(to) = r.target.get(n).filter(|_| r.target.starts_with(parent)) else {
                        continue;
                    };
                    if to == from || !children[parent].contains(to) {
                        continue;
                    }
                    edges
                        .entry((parent.to_vec(), from.clone(), to.clone()))
                        .or_default()
                        .push(format!("{}:{}: {}", file.path, r.line, r.text));
                }
            }
        }
        Graph { edges }
    }

    /// Every cycle, one message each: the modules of a strongly connected
    /// component, a shortest cycle through them, and every edge among them
    /// with the lines that make it.
    fn cycles(&self) -> Vec<String> {
        let mut by_parent: BTreeMap<&Vec<String>, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
        for (parent, from, to) in self.edges.keys() {
            by_parent
                .entry(parent)
                .or_default()
                .entry(from)
                .or_default()
                .insert(to);
        }
        let mut out = Vec::new();
        for (parent, graph) in by_parent {
            for component in strongly_connected(&graph) {
                if component.len() < 2 {
                    continue;
                }
                let name = |m: &str| {
                    let mut p = parent.clone();
                    p.push(m.to_string());
                    p.join("::")
                };
                let cycle = shortest_cycle(&graph, &component);
                let mut msg = format!(
                    "cycle: {}\n",
                    cycle
                        .iter()
                        .map(|m| name(m))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                );
                for from in &component {
                    for to in &graph[from] {
                        if !component.contains(to) {
                            continue;
                        }
                        msg.push_str(&format!("  {} -> {}:\n", name(from), name(to)));
                        let key = (parent.clone(), from.to_string(), to.to_string());
                        for site in &self.edges[&key] {
                            msg.push_str(&format!("    {site}\n"));
                        }
                    }
                }
                out.push(msg);
            }
        }
        out
    }
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in g.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(v, graph, &mut s);
        }
    }
    s.out.sort();
    s.out
}

/// A shortest cycle through the first module of `component`, inside it:
/// `[a, b, a]`.
fn shortest_cycle<'a>(
    graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    component: &[&'a str],
) -> Vec<&'a str> {
    let start = component[0];
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in graph.get(v).into_iter().flatten() {
            if !component.contains(&w) {
                continue;
            }
            if w == start {
                let mut path = vec![start, v];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = came_from.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    component.to_vec()
}

// --- long functions -----------------------------------------------------------

/// Functions over `max` lines outside test code and the allowlist.
fn long_functions(files: &[SourceFile], max: usize, allow: &[(&str, &str, &str)]) -> Vec<String> {
    let (scans, test_modules) = scan_all(files);
    let mut out = Vec::new();
    for (file, scan) in files.iter().zip(&scans) {
        if file.is_test(&test_modules) {
            continue;
        }
        let t = &file.tokens;
        for i in 0..t.len() {
            if t[i].text != "fn" || !t.get(i + 1).is_some_and(is_ident) {
                continue;
            }
            if scan.test_ranges.iter().any(|&(a, b)| a <= i && i <= b) {
                continue;
            }
            let Some(close) = body_end(t, i) else {
                continue;
            };
            let lines = t[close].line - t[i].line + 1;
            let name = &t[i + 1].text;
            if lines > max && !allow.iter().any(|(f, n, _)| *f == file.path && n == name) {
                out.push(format!(
                    "{}:{}: fn {name}: {lines} lines",
                    file.path, t[i].line
                ));
            }
        }
    }
    out
}

/// The closing brace of the body of the `fn` at `i`; `None` without a body.
fn body_end(t: &[Token], i: usize) -> Option<usize> {
    let mut parens = 0i32;
    let mut j = i;
    let open = loop {
        j += 1;
        match t.get(j)?.text.as_str() {
            "(" | "[" => parens += 1,
            ")" | "]" => parens -= 1,
            "{" if parens == 0 => break j,
            ";" if parens == 0 => return None,
            _ => {}
        }
    };
    let mut depth = 0;
    for (k, tok) in t.iter().enumerate().skip(open) {
        match tok.text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

// --- the checks can fail --------------------------------------------------------

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile::new(path, text)
}

#[test]
fn comments_and_literals_make_no_edges() {
    let text = r####"
//! Uses `crate::b::x` (a doc comment).
/// See crate::b::y.
/* crate::b::z /* nested crate::b */ still a comment crate::b */
fn f<'a>(s: &'a str) -> char {
    let _ = "crate::b::s \" crate::b";
    let _ = r#"crate::b "quoted" crate::b"#;
    let _ = br##"crate::b"##;
    let _ = b"crate::b";
    let _ = '"';
    let _ = '\'';
    let _ = b'{';
    'outer: loop { break 'outer; }
    let _ = "}";
    'x'
}
"####;
    let a = file("src/a.rs", text);
    assert_eq!(scan(&a).references.len(), 0);
    // The literals do not unbalance the braces either.
    let long = long_functions(&[a], 3, &[]);
    assert_eq!(long, ["src/a.rs:5: fn f: 12 lines"], "{long:?}");
}

#[test]
fn the_checks_find_what_they_look_for() {
    let files = [
        file("src/lib.rs", "pub mod a; pub mod b; pub mod c;"),
        file(
            "src/a/mod.rs",
            "mod one; mod two;\nuse crate::b::Thing;\nuse self::one::X;",
        ),
        file("src/a/one.rs", "use super::{two::Y, Z};\nuse super::*;"),
        file(
            "src/a/two.rs",
            "fn g() { crate::a::one::f(); }\n#[cfg(test)]\nmod tests { use super::super::one::T; }",
        ),
        file(
            "src/b.rs",
            "use crate::{c, a::{self, one}};\nmod inner { use super::super::c::Q; }",
        ),
        file(
            "src/c.rs",
            "use super::b::T;\n$crate::a::x\n#[cfg(test)]\nmod tests { use crate::a::Z; }\n#[cfg(test)]\nmod more;",
        ),
        file("src/c/more.rs", "use crate::a::Y;"),
        file("src/a/one/tests.rs", "use crate::c::W;"),
        file("src/main.rs", "use crate::a::x;"),
    ];
    let top = Graph::of(&files, Level::TopLevel).cycles();
    assert_eq!(top.len(), 1, "{top:#?}");
    let want = "cycle: a -> b -> a
  a -> b:
    src/a/mod.rs:2: crate::b::Thing
  b -> a:
    src/b.rs:1: crate::a
    src/b.rs:1: crate::a::one
  b -> c:
    src/b.rs:1: crate::c
    src/b.rs:2: super::super::c::Q
  c -> b:
    src/c.rs:1: super::b::T
";
    assert_eq!(top[0], want, "{}", top[0]);
    // The one `a -> b -> a` message covers the whole component {a, b, c}.
    assert!(top[0].contains("c -> b"));

    let siblings = Graph::of(&files, Level::Siblings).cycles();
    let want = "cycle: a::one -> a::two -> a::one
  a::one -> a::two:
    src/a/one.rs:1: super::two::Y
  a::two -> a::one:
    src/a/two.rs:1: crate::a::one::f
";
    assert_eq!(siblings, [want], "{siblings:#?}");

    let long = file(
        "src/d.rs",
        &format!(
            "fn short() {{}}\nfn long() {{\n{}}}\nfn table() {{\n{}}}\n#[cfg(test)]\nmod tests {{ fn long_test() {{\n{}}} }}\ntrait T {{ fn decl(&self); }}",
            "x();\n".repeat(4),
            "x();\n".repeat(4),
            "x();\n".repeat(4),
        ),
    );
    let tests = file(
        "src/d/tests.rs",
        &format!("fn t() {{\n{}}}", "x();\n".repeat(9)),
    );
    let found = long_functions(&[long, tests], 5, &[("src/d.rs", "table", "a table")]);
    assert_eq!(found, ["src/d.rs:2: fn long: 6 lines"], "{found:?}");
}
