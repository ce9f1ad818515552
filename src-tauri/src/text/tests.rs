//! The message files stay complete: every id in every language, every variable the code
//! passes declared, and the code references no id that does not exist (issue 25).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fluent_syntax::ast::{Entry, Expression, InlineExpression, Pattern, PatternElement};

use super::*;

/// id → variables its value uses, over all files of `lang`.
fn messages(lang: Lang) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (area, src) in sources(lang) {
        let res = fluent_syntax::parser::parse(src)
            .unwrap_or_else(|(_, e)| panic!("{}/{area}.ftl does not parse: {e:?}", lang.code()));
        for entry in res.body {
            if let Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(p) = &m.value {
                    pattern_vars(p, &mut vars);
                }
                let dup = out.insert(m.id.name.to_string(), vars);
                assert!(
                    dup.is_none(),
                    "{} defined twice in {}",
                    m.id.name,
                    lang.code()
                );
            }
        }
    }
    out
}

fn pattern_vars(p: &Pattern<&str>, vars: &mut BTreeSet<String>) {
    for el in &p.elements {
        if let PatternElement::Placeable { expression } = el {
            expr_vars(expression, vars);
        }
    }
}

fn expr_vars(e: &Expression<&str>, vars: &mut BTreeSet<String>) {
    match e {
        Expression::Inline(i) => inline_vars(i, vars),
        Expression::Select { selector, variants } => {
            inline_vars(selector, vars);
            for v in variants {
                pattern_vars(&v.value, vars);
            }
        }
    }
}

fn inline_vars(i: &InlineExpression<&str>, vars: &mut BTreeSet<String>) {
    match i {
        InlineExpression::VariableReference { id } => {
            vars.insert(id.name.to_string());
        }
        InlineExpression::Placeable { expression } => expr_vars(expression, vars),
        _ => {}
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, exts, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| exts.contains(&x))
        {
            out.push(p);
        }
    }
}

fn is_id(s: &str) -> bool {
    s.contains('-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Every `tr(lang, "id", &[("var", …)])` / `t("id", …)` call in the Rust code, and every
/// message id literal elsewhere (`"tray-live"` chosen in a match): (file, id, vars passed).
fn rust_references() -> Vec<(String, String, Option<BTreeSet<String>>)> {
    let mut paths = Vec::new();
    files(&repo().join("src-tauri/src"), &["rs"], &mut paths);
    let mut out = Vec::new();
    for p in paths {
        if p.starts_with(repo().join("src-tauri/src/text")) {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap();
        let name = p.display().to_string();
        for (at, _) in src.match_indices('"') {
            let rest = &src[at + 1..];
            let Some(end) = rest.find('"') else { continue };
            let lit = &rest[..end];
            if !is_id(lit) || !known_prefix(lit) || NOT_MESSAGES.contains(&lit) {
                continue;
            }
            // A call: the id follows `tr(` or `t(` closely; its args run to the next `])`.
            let before = &src[at.saturating_sub(40)..at];
            let call = before.contains("tr(") || before.contains("t(");
            let vars = if call {
                call_args(&rest[end + 1..])
            } else {
                None
            };
            out.push((name.clone(), lit.to_string(), vars));
        }
    }
    out
}

/// The names in the `&[("name", …), …]` that follows a call's id: None when the call passes
/// something else (a variable), which the scan cannot read.
fn call_args(tail: &str) -> Option<BTreeSet<String>> {
    let tail = tail.trim_start().strip_prefix(',')?.trim_start();
    let body = tail.strip_prefix("&[")?;
    let mut depth = 1;
    let mut close = None;
    for (i, c) in body.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let args = &body[..close?];
    Some(
        args.match_indices("(\"")
            .filter_map(|(i, _)| {
                let a = &args[i + 2..];
                a.find('"').map(|e| a[..e].to_string())
            })
            .collect(),
    )
}

/// Strings shaped like ids that are not messages (thread names in notify/desktop.rs).
const NOT_MESSAGES: &[&str] = &["popup-actions", "popup-close"];

/// Ids are prefixed by their area; a string with one of these prefixes is a message id.
fn known_prefix(s: &str) -> bool {
    let en = messages(Lang::En);
    let prefixes: BTreeSet<&str> = en.keys().filter_map(|k| k.split('-').next()).collect();
    s.split('-').next().is_some_and(|p| prefixes.contains(p))
}

#[test]
fn every_message_exists_in_every_language_with_the_same_variables() {
    let en = messages(Lang::En);
    assert!(en.len() > 50, "the English files look empty: {}", en.len());
    for lang in [Lang::De, Lang::Fr] {
        let other = messages(lang);
        let missing: Vec<_> = en.keys().filter(|k| !other.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{} lacks {missing:?}", lang.code());
        let extra: Vec<_> = other.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(
            extra.is_empty(),
            "{} has ids English lacks: {extra:?}",
            lang.code()
        );
        for (id, vars) in &other {
            let undeclared: Vec<_> = vars.difference(&en[id]).collect();
            assert!(
                undeclared.is_empty(),
                "{}: {id} uses {undeclared:?}, which English (and the code) never passes",
                lang.code()
            );
        }
    }
}

#[test]
fn every_id_the_code_uses_exists_and_gets_its_variables() {
    let en = messages(Lang::En);
    let refs = rust_references();
    assert!(
        refs.len() > 40,
        "the scan found too few references: {}",
        refs.len()
    );
    for (file, id, passed) in refs {
        let Some(wanted) = en.get(&id) else {
            panic!("{file} uses {id}, which no .ftl file defines");
        };
        if let Some(passed) = passed {
            let missing: Vec<_> = wanted.difference(&passed).collect();
            assert!(
                missing.is_empty(),
                "{file}: {id} needs {missing:?} but the code passes {passed:?}"
            );
            let unused: Vec<_> = passed.difference(wanted).collect();
            assert!(
                unused.is_empty(),
                "{file}: {id} does not declare {unused:?}"
            );
        }
    }
}

#[test]
fn german_and_french_plurals_and_fallbacks() {
    assert_eq!(
        tr(Lang::De, "tray-active", &[("count", 1.into())]),
        "1 aktiver Alarm"
    );
    assert_eq!(
        tr(Lang::De, "tray-active", &[("count", 3.into())]),
        "3 aktive Alarme"
    );
    assert_eq!(
        tr(Lang::Fr, "tray-active", &[("count", 0.into())]),
        "aucune alarme active"
    );
    assert_eq!(
        tr(Lang::En, "tray-active", &[("count", 2.into())]),
        "2 active alarms"
    );
    assert_eq!(vendor(Lang::De, "Upper limit"), "Oberer Grenzwert");
    assert_eq!(vendor(Lang::Fr, "Lower limit"), "Limite inférieure");
    // Unknown vendor texts are shown as received.
    assert_eq!(vendor(Lang::De, "Sensor flooded"), "Sensor flooded");
    assert_eq!(Lang::parse("de_DE.UTF-8"), Some(Lang::De));
    assert_eq!(Lang::parse("fr-CH"), Some(Lang::Fr));
    assert_eq!(Lang::parse("nl_NL"), None);
    assert_eq!(Lang::resolve("fr"), Lang::Fr);
}

/// The popup and tray builders hold no English sentence of their own: a string literal of two
/// or more words outside tests, logs and comments is a text that bypasses the .ftl files.
#[test]
fn popup_and_tray_builders_have_no_literal_sentences() {
    const FILES: &[&str] = &[
        "src-tauri/src/engine/wording.rs",
        "src-tauri/src/gui/tray.rs",
        "src-tauri/src/notify/desktop.rs",
    ];
    // Product names and machine strings that stay as they are in every language.
    const ALLOWED: &[&str] = &["Alarm Tray", "connection timeout", "tray relabel failed"];
    let mut found = Vec::new();
    for f in FILES {
        let src = std::fs::read_to_string(repo().join(f)).unwrap();
        let code = src.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines() {
            let l = line.trim();
            if l.starts_with("//") || l.contains("tracing::") || l.contains("expect(") {
                continue;
            }
            let mut rest = l;
            while let Some(a) = rest.find('"') {
                let after = &rest[a + 1..];
                let Some(b) = after.find('"') else { break };
                let lit = &after[..b];
                rest = &after[b + 1..];
                let words = lit
                    .split_whitespace()
                    .filter(|w| {
                        w.chars().filter(|c| c.is_alphabetic()).count() >= 2
                            && w.chars()
                                .all(|c| c.is_alphabetic() || ",.:;!?'()".contains(c))
                    })
                    .count();
                if words >= 2 && !ALLOWED.iter().any(|a| lit.contains(a)) {
                    found.push(format!("{f}: \"{lit}\""));
                }
            }
        }
    }
    assert!(found.is_empty(), "English left in the builders: {found:#?}");
}
