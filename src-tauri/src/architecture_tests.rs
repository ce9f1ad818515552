//! The import rules of ARCHITECTURE.md, checked on the source text: the compiler allows
//! every one of these arrows, so without this test a convenient `use` would quietly undo
//! the layering.
//!
//! Enforced, for every `.rs` file under `src/`:
//! 1. `engine/`, `feeds/`, `notify/` and `simulate/` never name `ipc` or `gui` (the window's
//!    protocol and the desktop shell rest on them, not the other way round);
//! 2. `feeds/` never names `engine`, and `engine/` never names `feeds`: both rest on
//!    `event.rs` only;
//! 3. nothing outside `gui/` names a tauri crate (`tauri::`, `tauri_plugin_…::`, `use tauri`).
//!
//! A module is "named" by any path that reaches it from the crate root: `crate::ipc`,
//! `super::super::ipc` (resolved against the file's place), `alarm_tray::ipc`, or an item of
//! a group such as `crate::{event, ipc::protocol}`. Comments count too: a doc link is a
//! dependency of the docs.

use std::path::{Path, PathBuf};

/// Files under these top-level modules may not name those.
const RULES: &[(&[&str], &[&str])] = &[
    (&["engine", "feeds", "notify", "simulate"], &["ipc", "gui"]),
    (&["feeds"], &["engine"]),
    (&["engine"], &["feeds"]),
    // Issue 26: team sharing is a feed and a sink at once; the roots wire it to the engine.
    (&["team"], &["ipc", "gui", "engine", "feeds"]),
    (&["engine", "feeds"], &["team"]),
];

/// The only top-level module that may use tauri.
const TAURI_HOME: &str = "gui";

/// This file spells the forbidden paths out; it is the one exempt from its own rules.
const SELF_FILE: &str = "architecture_tests.rs";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file relative to `src/`: `engine/mod.rs` → `[engine]`,
/// `feeds/element/rest.rs` → `[feeds, element, rest]`, `lib.rs` → `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The identifier starting at `i`, if any.
fn ident_at(text: &[u8], i: usize) -> Option<&str> {
    let end = (i..text.len())
        .find(|&j| !is_ident(text[j]))
        .unwrap_or(text.len());
    (end > i)
        .then(|| std::str::from_utf8(&text[i..end]).ok())
        .flatten()
}

fn skip_space(text: &[u8], mut i: usize) -> usize {
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Top-level modules of this crate that `text` names, with the byte offset of each path.
/// `module` is the file's module path; `super` chains are resolved against it (clamped at
/// the root, so a chain that could reach the root through an inline `mod tests` counts).
fn crate_paths(text: &str, module: &[String]) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':');
        let Some(word) = starts_word.then(|| ident_at(b, i)).flatten() else {
            i += 1;
            continue;
        };
        let start = i;
        i += word.len();
        // How far below the crate root the path stands.
        let Some(mut at) = (match word {
            "crate" | "alarm_tray" => Some(0),
            "super" => Some(module.len().saturating_sub(1)),
            _ => None,
        }) else {
            continue;
        };
        // Further `::super` segments climb; the first other segment is the target.
        let mut j = i;
        loop {
            if !b[j..].starts_with(b"::") {
                break;
            }
            j += 2;
            if b[j..].starts_with(b"super") && ident_at(b, j) == Some("super") {
                at = at.saturating_sub(1);
                j += 5;
                continue;
            }
            if at > 0 {
                // Below the root: a sibling or child module, not a top-level one.
                break;
            }
            if b.get(j) == Some(&b'{') {
                for name in group_heads(b, j) {
                    found.push((start, name));
                }
            } else if let Some(name) = ident_at(b, j) {
                found.push((start, name.to_string()));
            }
            break;
        }
        i = j.max(i);
    }
    found
}

/// The first identifier of each item of the `{…}` group opening at `open`.
fn group_heads(b: &[u8], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => {
                expect_head = true;
                i += 1;
            }
            _ if depth == 1 && expect_head => {
                i = skip_space(b, i);
                if let Some(name) = ident_at(b, i) {
                    heads.push(name.to_string());
                    i += name.len();
                }
                expect_head = false;
            }
            _ => i += 1,
        }
    }
    heads
}

/// Byte offsets where `text` names a tauri crate.
fn tauri_uses(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !is_ident(b[i - 1]);
        match starts_word.then(|| ident_at(b, i)).flatten() {
            Some(word) if word.starts_with("tauri") => {
                let path = b[i + word.len()..].starts_with(b"::");
                let before = text[..i].trim_end();
                let used = ends_with_word(before, "use") || ends_with_word(before, "crate");
                if path || used {
                    found.push(i);
                }
                i += word.len();
            }
            Some(word) => i += word.len(),
            None => i += 1,
        }
    }
    found
}

/// `text` ends with the whole word `word` ("use", not "because").
fn ends_with_word(text: &str, word: &str) -> bool {
    text.strip_suffix(word)
        .is_some_and(|rest| !rest.bytes().last().is_some_and(is_ident))
}

fn line_of(text: &str, offset: usize) -> (usize, &str) {
    let n = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(n - 1).unwrap_or("").trim();
    (n, line)
}

/// Every broken rule in `text` (a file at `rel` under `src/`), as `file:line: why: code`.
fn violations(rel: &Path, text: &str) -> Vec<String> {
    let module = module_path(rel);
    let top = module.first().map(String::as_str).unwrap_or("");
    let mut out = Vec::new();
    for (offset, target) in crate_paths(text, &module) {
        for (from, to) in RULES {
            if from.contains(&top) && to.contains(&target.as_str()) {
                let (n, line) = line_of(text, offset);
                out.push(format!(
                    "{}:{n}: {top}/ names {target}/: {line}",
                    rel.display()
                ));
            }
        }
    }
    if top != TAURI_HOME {
        for offset in tauri_uses(text) {
            let (n, line) = line_of(text, offset);
            out.push(format!(
                "{}:{n}: tauri outside {TAURI_HOME}/: {line}",
                rel.display()
            ));
        }
    }
    out
}

#[test]
fn the_import_rules_hold() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 20,
        "only {} files under {}",
        files.len(),
        src.display()
    );
    let mut broken = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src/");
        if rel == Path::new(SELF_FILE) {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("readable source");
        broken.extend(violations(rel, &text));
    }
    assert!(
        broken.is_empty(),
        "import rules broken (see ARCHITECTURE.md):\n{}",
        broken.join("\n")
    );
}

/// The scanner itself: each way of naming a forbidden module is caught, the allowed ones
/// are not.
#[test]
fn the_scanner_sees_every_spelling() {
    let bad = |rel: &str, text: &str| violations(Path::new(rel), text);
    assert_eq!(
        bad("engine/history.rs", "use crate::ipc::protocol::AlarmRow;").len(),
        1
    );
    assert_eq!(
        bad("feeds/element/rest.rs", "use super::super::super::gui::x;").len(),
        1
    );
    assert_eq!(
        bad(
            "notify/mod.rs",
            "use crate::{\n    event::Source,\n    ipc::protocol::Status,\n};"
        ),
        vec!["notify/mod.rs:1: notify/ names ipc/: use crate::{".to_string()]
    );
    assert_eq!(
        bad("feeds/mod.rs", "let h = crate::engine::History::open(p);").len(),
        1
    );
    assert_eq!(
        bad("engine/rules.rs", "use super::super::feeds::backoff;").len(),
        1
    );
    assert_eq!(bad("simulate/demo.rs", "x: alarm_tray::ipc::Foo").len(), 1);
    assert_eq!(bad("monitor.rs", "use tauri::AppHandle;").len(), 1);
    assert_eq!(bad("ipc/server.rs", "#[tauri::command]").len(), 1);
    assert_eq!(
        bad("runtime.rs", "use tauri_plugin_store::StoreExt;").len(),
        1
    );
    assert_eq!(bad("watch.rs", "use tauri;").len(), 1);

    // Allowed: within the engine, upwards to event.rs, the gui using tauri, prose.
    assert!(bad("engine/history.rs", "use super::model::AlarmRow;").is_empty());
    assert!(bad(
        "engine/mod.rs",
        "use crate::{event::Event, settings::Settings};"
    )
    .is_empty());
    assert!(bad("feeds/element/rest.rs", "use super::super::backoff;").is_empty());
    assert!(bad("feeds/element/rest.rs", "use crate::event::NamedItem;").is_empty());
    assert!(bad("gui/tray.rs", "use tauri::image::Image;").is_empty());
    assert!(bad("monitor.rs", "use crate::ipc::protocol::Request;").is_empty());
    assert!(bad("settings.rs", "//! the store file of tauri-plugin-store").is_empty());
    assert!(bad("lib.rs", "//! Only `gui` imports tauri.").is_empty());
    assert!(bad("notify/desktop.rs", "// because tauri drops it").is_empty());
    assert!(bad("engine/mod.rs", "pub(crate) fn f() {}").is_empty());
}
