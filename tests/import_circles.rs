//! No two files of `src/` call each other, directly or round a longer loop: a file that
//! defines what its neighbours share must not also call them (issue 25). Read as a person
//! would: the `use` lines and the `crate::`, `super::` and child-module paths written in
//! code, outside comments, strings and test modules. `mod x;` only declares, and a
//! `pub use` is a door: a path through it leads to what it re-exports.
//!
//! A circle that must stay for a while may be listed in `KNOWN`; a new one fails the test,
//! and so does a listed one that is gone (take it off the list).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles not yet taken apart, each as its files (relative to `src/`), sorted. Empty: a
/// `mod.rs` is the door (it declares, re-exports and picks), and what its children share
/// lives in a leaf they all import.
const KNOWN: &[&[&str]] = &[];

#[test]
fn no_file_calls_the_files_that_call_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let crate_map = Crate::read(&src);
    let circles = crate_map.circles();
    let known: BTreeSet<Vec<String>> = KNOWN
        .iter()
        .map(|c| c.iter().map(|f| f.to_string()).collect())
        .collect();
    let new: Vec<_> = circles.difference(&known).collect();
    let gone: Vec<_> = known.difference(&circles).collect();
    let show = |c: &Vec<String>| {
        let calls = crate_map.calls_within(c);
        format!("  {}\n    {}", c.join(" <-> "), calls.join("\n    "))
    };
    assert!(
        new.is_empty(),
        "import circles between files (a leaf file should hold what they share):\n{}",
        new.iter().map(|c| show(c)).collect::<Vec<_>>().join("\n")
    );
    assert!(
        gone.is_empty(),
        "circles taken apart, to take off KNOWN: {gone:?}"
    );
}

/// The crate's files by module path, and what each file's code names.
struct Crate {
    /// `crate::media::inspect` → `media/inspect/mod.rs`.
    files: BTreeMap<String, String>,
    /// Each file's module path and its code (comments, strings and test modules removed).
    code: BTreeMap<String, (String, String)>,
    /// Names a file re-exports (`pub use`), with the module path they lead to.
    doors: BTreeMap<(String, String), String>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut code = BTreeMap::new();
        for path in rust_files(src) {
            let relative = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if relative == "main.rs" {
                continue;
            }
            let module = module_path(&relative);
            let text = strip(&std::fs::read_to_string(&path).unwrap());
            files.insert(module.clone(), relative.clone());
            code.insert(relative, (module, text));
        }
        let mut this = Self {
            files,
            code,
            doors: BTreeMap::new(),
        };
        let mut doors = BTreeMap::new();
        for (module, text) in this.code.values() {
            for statement in use_statements(text).into_iter().filter(|s| s.0) {
                for path in expand(&statement.1) {
                    let name = path.rsplit("::").next().unwrap_or_default().to_owned();
                    let name = name
                        .rsplit(" as ")
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    doors.insert((module.clone(), name), this.absolute(module, &path));
                }
            }
        }
        this.doors = doors;
        this
    }

    /// `path` as written in `module`, made absolute (`crate::…`).
    fn absolute(&self, module: &str, path: &str) -> String {
        let path = path.trim().split(" as ").next().unwrap_or_default().trim();
        let mut parts: Vec<&str> = path.split("::").collect();
        let mut base: Vec<String> = module.split("::").map(str::to_owned).collect();
        match parts.first().copied() {
            Some("crate") | Some("callfeed") => {
                parts.remove(0);
                base = vec!["crate".into()];
            }
            Some("self") => {
                parts.remove(0);
            }
            Some("super") => {
                while parts.first() == Some(&"super") {
                    parts.remove(0);
                    base.pop();
                }
            }
            // A child module of this one, named without `self::`.
            Some(first) if self.files.contains_key(&format!("{module}::{first}")) => {}
            _ => return String::new(),
        }
        base.extend(parts.iter().map(|p| p.to_string()));
        base.join("::")
    }

    /// The file a path leads to: the deepest module it names, through any door.
    fn file_of(&self, absolute: &str, depth: usize) -> Option<String> {
        let parts: Vec<&str> = absolute.split("::").collect();
        for n in (1..=parts.len()).rev() {
            let module = parts[..n].join("::");
            if let Some(file) = self.files.get(&module) {
                if n < parts.len() && depth < 4 {
                    let name = parts[n].to_owned();
                    if let Some(through) = self.doors.get(&(module.clone(), name)) {
                        let rest = parts[n + 1..].join("::");
                        let target = if rest.is_empty() {
                            through.clone()
                        } else {
                            format!("{through}::{rest}")
                        };
                        return self.file_of(&target, depth + 1);
                    }
                }
                return Some(file.clone());
            }
        }
        None
    }

    /// Each file's calls: the files its code names, with the path that names them.
    fn calls(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut calls = BTreeMap::new();
        for (file, (module, text)) in &self.code {
            let mut named: BTreeMap<String, String> = BTreeMap::new();
            let mut paths: Vec<String> = use_statements(text)
                .into_iter()
                .filter(|s| !s.0)
                .flat_map(|s| expand(&s.1))
                .collect();
            paths.extend(code_paths(&without_uses(text)));
            for path in paths {
                let absolute = self.absolute(module, &path);
                if absolute.is_empty() {
                    continue;
                }
                if let Some(target) = self.file_of(&absolute, 0)
                    && target != *file
                {
                    named.entry(target).or_insert(path);
                }
            }
            calls.insert(file.clone(), named);
        }
        calls
    }

    /// Every set of files that call each other round a loop.
    fn circles(&self) -> BTreeSet<Vec<String>> {
        let calls = self.calls();
        let reach = |from: &String| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(file) = todo.pop() {
                for next in calls.get(&file).into_iter().flat_map(|c| c.keys()) {
                    if seen.insert(next.clone()) {
                        todo.push(next.clone());
                    }
                }
            }
            seen
        };
        let reached: BTreeMap<_, _> = calls.keys().map(|f| (f.clone(), reach(f))).collect();
        let mut circles = BTreeSet::new();
        for (file, from_it) in &reached {
            let mut circle: Vec<String> = from_it
                .iter()
                .filter(|other| reached[*other].contains(file))
                .cloned()
                .collect();
            if circle.len() > 1 {
                circle.sort();
                circles.insert(circle);
            }
        }
        circles
    }

    /// The calls between the files of a circle, for the failure message.
    fn calls_within(&self, circle: &[String]) -> Vec<String> {
        let calls = self.calls();
        let mut shown = Vec::new();
        for from in circle {
            for (to, path) in &calls[from] {
                if circle.contains(to) {
                    shown.push(format!("{from} -> {to} ({path})"));
                }
            }
        }
        shown
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// `media/inspect/mod.rs` → `crate::media::inspect`.
fn module_path(relative: &str) -> String {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    if matches!(parts.last(), Some(&"mod") | Some(&"lib")) {
        parts.pop();
    }
    std::iter::once("crate")
        .chain(parts)
        .collect::<Vec<_>>()
        .join("::")
}

/// The code without comments, string and char literals, and `#[cfg(test)]` items.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            // A raw string's hashes are few; an escaped quote is skipped.
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    // Test modules come last in a file: everything from their attribute on is theirs.
    match out.find("#[cfg(test)]") {
        Some(at) => out[..at].to_owned(),
        None => out,
    }
}

/// Each `use` statement: whether it is a `pub use` (a door), and its tree.
fn use_statements(text: &str) -> Vec<(bool, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let starts_word = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}');
        let after = &rest[at + 4..];
        let Some(end) = after.find(';') else { break };
        if starts_word {
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let public = before[line_start..].trim_start().starts_with("pub");
            found.push((
                public,
                after[..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
        rest = &after[end..];
    }
    found
}

/// `text` with its `use` statements blanked (they are read by [`use_statements`]).
fn without_uses(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let starts_word = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}');
        let Some(end) = rest[at..].find(';') else {
            break;
        };
        out.push_str(&rest[..at]);
        if !starts_word {
            out.push_str(&rest[at..at + end]);
        }
        rest = &rest[at + end..];
    }
    out.push_str(rest);
    out
}

/// A use tree's paths, braces expanded (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.trim_end_matches("::*").to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            let p = p.trim();
            if p == "self" {
                vec![prefix.trim_end_matches("::").to_owned()]
            } else {
                expand(&format!("{prefix}{p}"))
            }
        })
        .collect()
}

/// Paths written in code: `crate::…`, `super::…`, `self::…` and `child::…`.
fn code_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = i == 0
            || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if starts && (bytes[i].is_alphabetic() || bytes[i] == '_') {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':')
            {
                j += 1;
            }
            let word: String = bytes[i..j].iter().collect();
            if word.contains("::") {
                paths.push(word.trim_end_matches(':').to_owned());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    paths
}
