//! The layering rule of `ARCHITECTURE.md` ("Layers"), enforced: every `crate::…` path in `src/`
//! (and `super::…` paths that climb to the crate root) is an edge from the top-level module of
//! its file to the top-level module it names; an edge may not go up the written layer order,
//! and no two top-level modules may import each other, directly or around a circle.
//!
//! The layer order is read from `ARCHITECTURE.md`, so the document and the check cannot drift.
//! Unit tests (`#[cfg(test)]` items and the files of `#[cfg(test)] mod …;`) are left out: like
//! dev-dependencies, they may use any module. Today's exceptions are in [`ALLOWED`], each with
//! its reason; an exception whose edge no longer exists fails the test, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Edges that break the rule, `(from, to, why)`, each with what would remove it: none today.
const ALLOWED: &[(&str, &str, &str)] = &[];

#[test]
fn layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let layers = read_layers(&root.join("ARCHITECTURE.md"));
    let graph = Graph::read(&root.join("src"));
    let mut failures = Vec::new();

    // Every top-level module has exactly one layer, and every layer names modules that exist.
    let mut layer_of = BTreeMap::new();
    for (index, modules) in layers.iter().enumerate() {
        for module in modules {
            if layer_of.insert(module.clone(), index).is_some() {
                failures.push(format!("`{module}` is in two layers of ARCHITECTURE.md"));
            }
        }
    }
    for module in &graph.modules {
        if !layer_of.contains_key(module) {
            failures.push(format!(
                "`{module}` has no layer: add it under \"Layers\" in ARCHITECTURE.md"
            ));
        }
    }
    for module in layer_of.keys() {
        if !graph.modules.contains(module) {
            failures.push(format!(
                "ARCHITECTURE.md places `{module}`, which is not a module of src/lib.rs"
            ));
        }
    }

    let allowed: BTreeSet<(String, String)> = ALLOWED
        .iter()
        .map(|(from, to, _)| (from.to_string(), to.to_string()))
        .collect();
    for (from, to) in &allowed {
        if !graph.edges.contains_key(&(from.clone(), to.clone())) {
            failures.push(format!(
                "`{from}` → `{to}` is allowed but no longer exists: remove it from ALLOWED"
            ));
        }
    }

    // No edge goes up.
    for ((from, to), sites) in &graph.edges {
        if allowed.contains(&(from.clone(), to.clone())) {
            continue;
        }
        // Layers order the top-level modules; below them, only circles are refused.
        if let (Some(&below), Some(&above)) = (layer_of.get(from), layer_of.get(to))
            && above > below
        {
            failures.push(format!(
                "`{from}` (layer {}) imports `{to}` (layer {}), a layer above it: {}",
                below + 1,
                above + 1,
                sites.join(", ")
            ));
        }
    }

    // No circle between top-level modules (only possible within one layer once the upward
    // edges are refused), nor between the modules of one parent.
    let upward = |(from, to): &(String, String)| match (layer_of.get(from), layer_of.get(to)) {
        (Some(below), Some(above)) => above > below,
        _ => false,
    };
    let kept: Vec<(String, String)> = graph
        .edges
        .keys()
        .filter(|edge| !allowed.contains(*edge) && !upward(edge))
        .cloned()
        .collect();
    let nodes: BTreeSet<String> = graph
        .all_modules
        .iter()
        .map(|path| path.join("::"))
        .collect();
    for circle in circles(&nodes, &kept) {
        let edges: Vec<String> = kept
            .iter()
            .filter(|(from, to)| circle.contains(from) && circle.contains(to))
            .map(|(from, to)| {
                format!(
                    "{from} → {to} ({})",
                    graph.edges[&(from.clone(), to.clone())].join(", ")
                )
            })
            .collect();
        failures.push(format!(
            "import circle between {}: {}",
            circle.iter().cloned().collect::<Vec<_>>().join(", "),
            edges.join("; ")
        ));
    }

    let top_level = graph
        .edges
        .keys()
        .filter(|(from, _)| !from.contains("::"))
        .count();
    println!(
        "layers: {} top-level modules in {} layers, {} edges between them; {} modules in all, \
         {} edges between siblings below the top level; {} edges allowed against the rule",
        graph.modules.len(),
        layers.len(),
        top_level,
        graph.all_modules.len(),
        graph.edges.len() - top_level,
        allowed.len()
    );
    assert!(
        failures.is_empty(),
        "layering rule broken:\n- {}",
        failures.join("\n- ")
    );
}

/// The layers under the heading "Layers" of ARCHITECTURE.md, bottom first: one numbered item
/// per layer, naming its modules in backticks before the " — " that starts its description.
fn read_layers(path: &Path) -> Vec<BTreeSet<String>> {
    let text = fs::read_to_string(path).expect("ARCHITECTURE.md is readable");
    let section = text
        .split("\n## ")
        .find(|section| section.starts_with("Layers\n"))
        .expect("ARCHITECTURE.md has a \"## Layers\" section");
    let mut layers = Vec::new();
    for line in section.lines() {
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        assert_eq!(
            number.parse::<usize>().ok(),
            Some(layers.len() + 1),
            "layers are numbered 1, 2, … from the bottom: {line}"
        );
        let names = rest.split(" — ").next().unwrap_or_default();
        let modules: BTreeSet<String> = names
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        assert!(
            !modules.is_empty(),
            "a layer names its modules in backticks: {line}"
        );
        layers.push(modules);
    }
    assert!(!layers.is_empty(), "the \"Layers\" section lists no layer");
    layers
}

/// The modules of `src/` (one per file) and the edges between siblings: a path from module
/// `a::x::…` to module `a::y::…` is an edge `a::x` → `a::y` (top-level modules have the root as
/// parent), each with where it is used (`file:line`).
struct Graph {
    /// Top-level modules, as `src/lib.rs` declares them.
    modules: BTreeSet<String>,
    /// Every module with a file of its own, below the top level too.
    all_modules: BTreeSet<Vec<String>>,
    edges: BTreeMap<(String, String), Vec<String>>,
}

impl Graph {
    fn read(src: &Path) -> Graph {
        let lib = code_only(&fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs"));
        let (modules, reexports) = root_items(&lib);
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files.sort();

        // Module paths of every file, and the modules that exist only under `cfg(test)`.
        let mut sources = Vec::new();
        let mut test_only: Vec<Vec<String>> = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(src).expect("under src");
            let path = module_path(relative);
            let text = fs::read_to_string(file).expect("readable source");
            let (code, test_mods) = without_test_items(&code_only(&text));
            for name in test_mods {
                let mut child = path.clone();
                child.push(name);
                test_only.push(child);
            }
            sources.push((relative.display().to_string(), path, code));
        }
        sources.retain(|(name, path, _)| {
            name != "main.rs" && !test_only.iter().any(|prefix| path.starts_with(prefix))
        });
        let all_modules: BTreeSet<Vec<String>> = sources
            .iter()
            .map(|(_, path, _)| path.clone())
            .filter(|path| !path.is_empty())
            .collect();

        let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (name, from, code) in &sources {
            if from.is_empty() {
                continue; // lib.rs: the module list itself
            }
            for (line, mut path) in root_paths(code, from) {
                let Some(first) = path.first().cloned() else {
                    continue;
                };
                if !modules.contains(&first) {
                    match reexports.get(&first) {
                        Some(module) => path = vec![module.clone()],
                        None => panic!(
                            "src/{name}:{line}: `crate::{first}` is neither a module nor a re-export of src/lib.rs"
                        ),
                    }
                }
                // The module the path names: its longest prefix that is a module with a file.
                while path.len() > 1 && !all_modules.contains(&path) {
                    path.pop();
                }
                let common = from.iter().zip(&path).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == path.len() {
                    continue; // within one module, or between a module and its ancestor
                }
                edges
                    .entry((from[..=common].join("::"), path[..=common].join("::")))
                    .or_default()
                    .push(format!("src/{name}:{line}"));
            }
        }
        for sites in edges.values_mut() {
            sites.dedup();
            if sites.len() > 3 {
                let more = sites.len() - 3;
                sites.truncate(3);
                sites.push(format!("{more} more"));
            }
        }
        Graph {
            modules,
            all_modules,
            edges,
        }
    }
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `a/b/c.rs` → `[a, b, c]`; `lib.rs` → `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut path: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = path.last_mut() {
        *last = last.trim_end_matches(".rs").to_string();
    }
    if path == ["lib"] {
        path.clear();
    }
    path
}

/// The modules `lib.rs` declares, and the names it re-exports (`pub use module::{A, B};`).
fn root_items(lib: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for statement in lib.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.as_slice() {
            [.., "mod", name] => {
                modules.insert(name.to_string());
            }
            ["pub", "use", ..] | ["use", ..] => {
                let path = statement
                    .split_once("use")
                    .map(|(_, path)| path)
                    .unwrap_or("");
                let path = path.trim().trim_start_matches("crate::");
                if let Some((module, names)) = path.split_once("::") {
                    for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
                        let name = name.split(" as ").last().unwrap_or(name).trim();
                        if !name.is_empty() {
                            reexports.insert(name.to_string(), module.trim().to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (modules, reexports)
}

/// Source text with comments, string and character literals blanked out (newlines kept, so
/// line numbers stay right).
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let blank = |out: &mut Vec<u8>, byte: u8| out.push(if byte == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(bytes, i) {
            // r"…", r#"…"#, br"…": ends at a quote followed by as many hashes.
            let open = rest
                .iter()
                .position(|&b| b == b'"')
                .expect("raw string quote")
                + 1;
            for &byte in &rest[..open] {
                out.push(byte);
            }
            i += open;
            while i < bytes.len() {
                if bytes[i] == b'"'
                    && bytes[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&b| b == b'#')
                        .count()
                        == hashes
                {
                    break;
                }
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if bytes[i] == b'"' {
            out.push(b'"');
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
                if i < bytes.len() {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
            if i < bytes.len() {
                out.push(b'"');
                i += 1;
            }
        } else if bytes[i] == b'\'' && char_literal_len(rest).is_some() {
            let len = char_literal_len(rest).unwrap_or(1);
            out.extend(std::iter::repeat_n(b' ', len));
            i += len;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// At a raw string (`r"`, `r#"`, `br"`, …) not preceded by an identifier character: its hashes.
fn raw_string_start(bytes: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if bytes.get(j) == Some(&b'b') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = bytes[j..].iter().take_while(|&&b| b == b'#').count();
    (bytes.get(j + hashes) == Some(&b'"')).then_some(hashes)
}

/// The length of a character literal at `rest` (`'a'`, `'\n'`, `'\u{1F600}'`, `'é'`); `None`
/// for a lifetime or label.
fn char_literal_len(rest: &[u8]) -> Option<usize> {
    if rest.get(1) == Some(&b'\\') {
        return rest[2..]
            .iter()
            .position(|&b| b == b'\'')
            .map(|end| end + 3);
    }
    let text = std::str::from_utf8(&rest[1..rest.len().min(6)])
        .unwrap_or_else(|e| std::str::from_utf8(&rest[1..1 + e.valid_up_to()]).unwrap_or_default());
    let first = text.chars().next()?;
    (text[first.len_utf8()..].starts_with('\'')).then(|| 2 + first.len_utf8())
}

/// Blanks every `#[cfg(test)]` item; returns the names of `#[cfg(test)] mod name;` files.
fn without_test_items(code: &str) -> (String, Vec<String>) {
    let mut bytes = code.as_bytes().to_vec();
    let mut test_mods = Vec::new();
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], marker) {
        let start = from + found;
        let mut i = start + marker.len();
        // Further attributes, then the item up to its `;` or its closing brace.
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if bytes[i..].starts_with(b"#[") {
                i = close_of(&bytes, i + 1, b'[', b']');
            } else {
                break;
            }
        }
        let item_start = i;
        while i < bytes.len() && bytes[i] != b';' && bytes[i] != b'{' {
            i += 1;
        }
        let header = String::from_utf8_lossy(&bytes[item_start..i]).into_owned();
        let end = if i < bytes.len() && bytes[i] == b'{' {
            close_of(&bytes, i, b'{', b'}')
        } else {
            if let ["mod", name] | ["pub", "mod", name] =
                header.split_whitespace().collect::<Vec<_>>().as_slice()
            {
                test_mods.push(name.to_string());
            }
            i + 1
        };
        for byte in &mut bytes[start..end.min(code.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = end.min(code.len());
    }
    (String::from_utf8_lossy(&bytes).into_owned(), test_mods)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The index just past the bracket closing the one at `open`.
fn close_of(bytes: &[u8], open: usize, left: u8, right: u8) -> usize {
    let mut depth = 0;
    for (i, &byte) in bytes.iter().enumerate().skip(open) {
        if byte == left {
            depth += 1;
        } else if byte == right {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    bytes.len()
}

/// Every module path a file's paths start at the crate root, with its line: `crate::a::b…`,
/// each path of `crate::{a, b::{c, d}}`, and `super::…` chains that climb from `module` (the
/// file's module path) or from a module written inline in it. Paths are resolved as far as
/// their segments are identifiers; the caller keeps the part that names modules.
fn root_paths(code: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let inline = inline_modules(code);
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b'$')) {
            i += 1;
            continue;
        }
        let word_end = i + bytes[i..].iter().take_while(|&&b| ident(b)).count();
        let word = &code[i..word_end];
        let preceded_by_path = code[..i].trim_end().ends_with("::");
        let mut at = word_end;
        let base = match word {
            "crate" => Some(Vec::new()),
            "super" if !preceded_by_path => {
                let mut here: Vec<String> = module.to_vec();
                here.extend(
                    inline
                        .iter()
                        .filter(|(_, start, end)| (*start..*end).contains(&i))
                        .map(|(name, _, _)| name.clone()),
                );
                here.pop();
                while let Some(next) = skip_path_sep(code, at) {
                    if code[next..].starts_with("super")
                        && !ident(*bytes.get(next + 5).unwrap_or(&b' '))
                    {
                        here.pop();
                        at = next + 5;
                    } else {
                        break;
                    }
                }
                Some(here)
            }
            _ => None,
        };
        if let Some(base) = base
            && let Some(next) = skip_path_sep(code, at)
        {
            let line = code[..i].matches('\n').count() + 1;
            for tail in use_tree(code, next) {
                let mut path = base.clone();
                path.extend(tail);
                found.push((line, path));
            }
        }
        i = word_end;
    }
    found
}

/// The modules written inline in a file (`mod name { … }`): name and body (`{` to `}`).
fn inline_modules(code: &str) -> Vec<(String, usize, usize)> {
    let mut bodies = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("mod ") {
        let at = from + found;
        from = at + 4;
        if at > 0 && code.as_bytes()[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = code[from..].trim_start();
        let name_len = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .count();
        if name_len > 0 && rest[name_len..].trim_start().starts_with('{') {
            let open = code.len() - rest[name_len..].trim_start().len();
            bodies.push((
                rest[..name_len].to_string(),
                open,
                close_of(code.as_bytes(), open, b'{', b'}'),
            ));
        }
    }
    bodies
}

/// After `::` (with optional whitespace) at `at`: the index past it and its whitespace.
fn skip_path_sep(code: &str, at: usize) -> Option<usize> {
    let rest = &code[at..];
    let after = rest.trim_start().strip_prefix("::")?;
    Some(code.len() - after.trim_start().len())
}

/// The paths of the use tree (or plain path) at `at`: `a::b::C` is `[a, b, C]`, `a::{b, c::d}`
/// is `[a, b]` and `[a, c, d]`; `self` in a group names the group's prefix.
fn use_tree(code: &str, at: usize) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    if bytes.get(at) == Some(&b'{') {
        let end = close_of(bytes, at, b'{', b'}');
        let mut paths = Vec::new();
        let mut depth = 0;
        let mut item = at + 1;
        for i in at..end {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' | b',' if depth == 1 => {
                    let start = item + (code[item..i].len() - code[item..i].trim_start().len());
                    if start < i {
                        paths.extend(use_tree(code, start));
                    }
                    item = i + 1;
                    if bytes[i] == b'}' {
                        depth -= 1;
                    }
                }
                b'}' => depth -= 1,
                _ => {}
            }
        }
        return paths;
    }
    let name: String = code[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        return vec![Vec::new()]; // `*`
    }
    if name == "self" {
        return vec![Vec::new()];
    }
    match skip_path_sep(code, at + name.len()) {
        Some(next) => use_tree(code, next)
            .into_iter()
            .map(|mut tail| {
                tail.insert(0, name.clone());
                tail
            })
            .collect(),
        None => vec![vec![name]],
    }
}

/// The strongly connected components with more than one module (Tarjan).
fn circles(modules: &BTreeSet<String>, edges: &[(String, String)]) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let n = state.index.len();
        state.index.insert(node, n);
        state.low.insert(node, n);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.next.get(node).cloned().unwrap_or_default() {
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = BTreeSet::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.insert(top.to_string());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for (from, to) in edges {
        state
            .next
            .entry(from.as_str())
            .or_default()
            .push(to.as_str());
    }
    for module in modules {
        if !state.index.contains_key(module.as_str()) {
            visit(&mut state, module.as_str());
        }
    }
    state.found
}
