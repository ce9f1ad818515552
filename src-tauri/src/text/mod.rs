//! Text for people, in the user's language (issue 25): Fluent bundles built from the `.ftl`
//! files of the repository's `locales/` folder, embedded at build time so the binary needs no
//! files beside it. The window loads the same files (ui/src/i18n). Machine output (`watch`
//! JSON keys and kinds, error kinds) never comes from here.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The languages the app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    En,
    De,
    Fr,
}

/// The files of each language, by area. `include_str!` wants literal paths, hence the macro.
macro_rules! ftl {
    ($lang:literal) => {
        [
            (
                "popups",
                include_str!(concat!("../../../locales/", $lang, "/popups.ftl")),
            ),
            (
                "tray",
                include_str!(concat!("../../../locales/", $lang, "/tray.ftl")),
            ),
            (
                "ui",
                include_str!(concat!("../../../locales/", $lang, "/ui.ftl")),
            ),
        ]
    };
}

/// (language, area, source) of every embedded file.
pub(crate) fn sources(lang: Lang) -> [(&'static str, &'static str); 3] {
    match lang {
        Lang::En => ftl!("en"),
        Lang::De => ftl!("de"),
        Lang::Fr => ftl!("fr"),
    }
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::De, Lang::Fr];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
        }
    }

    /// "de", "de_DE.UTF-8", "fr-CH"… → the language, when the app speaks it.
    pub fn parse(s: &str) -> Option<Lang> {
        let code = s
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The desktop's language: `LANGUAGE`'s first entry, then `LC_ALL`, `LC_MESSAGES`, `LANG`
    /// (the first one set, as gettext reads them); English when it is none of ours.
    pub fn from_env() -> Lang {
        let first = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty() && v != "C" && v != "POSIX")
        };
        let messages = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .into_iter()
            .find_map(first)
            .unwrap_or_default();
        // gettext honours LANGUAGE only when the locale is not C.
        if !messages.is_empty() && !messages.starts_with("C.") {
            if let Some(l) = first("LANGUAGE").and_then(|v| v.split(':').find_map(Lang::parse)) {
                return l;
            }
        } else if let Some(l) = first("LANGUAGE").and_then(|v| v.split(':').find_map(Lang::parse)) {
            // C.UTF-8 with LANGUAGE=de: the user still asked for German.
            return l;
        }
        Lang::parse(&messages).unwrap_or(Lang::En)
    }

    /// The settings' `language` ("auto", "en", "de", "fr") → the language to speak.
    pub fn resolve(setting: &str) -> Lang {
        match setting.trim() {
            "" | "auto" => Lang::from_env(),
            s => Lang::parse(s).unwrap_or_else(Lang::from_env),
        }
    }

    /// German and French write 3,5 rather than 3.5.
    pub fn decimal_comma(self) -> bool {
        self != Lang::En
    }
}

fn bundle(lang: Lang) -> &'static FluentBundle<FluentResource> {
    static BUNDLES: OnceLock<Vec<FluentBundle<FluentResource>>> = OnceLock::new();
    let all = BUNDLES.get_or_init(|| {
        Lang::ALL
            .into_iter()
            .map(|lang| {
                let id: unic_langid::LanguageIdentifier = lang.code().parse().unwrap_or_default();
                let mut b = FluentBundle::new_concurrent(vec![id]);
                // No Unicode isolation marks: popups and menus are plain text, and the
                // marks show as boxes in some notification daemons.
                b.set_use_isolating(false);
                for (area, src) in sources(lang) {
                    // The files are ours and checked by the parity test; a broken entry is
                    // skipped rather than taking the whole language down.
                    let res = FluentResource::try_new(src.to_string()).unwrap_or_else(|(r, e)| {
                        tracing::warn!(lang = lang.code(), area, errors = ?e, "ftl parse errors");
                        r
                    });
                    b.add_resource_overriding(res);
                }
                b
            })
            .collect()
    });
    &all[Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0)]
}

/// The message `id` in `lang` with its variables; English when the language lacks it, the
/// id itself only if English does too (the parity test keeps that from happening).
pub fn tr(lang: Lang, id: &str, args: &[(&str, FluentValue)]) -> String {
    let mut fargs = FluentArgs::new();
    for (k, v) in args {
        fargs.set(*k, v.clone());
    }
    for l in [lang, Lang::En] {
        let b = bundle(l);
        if let Some(pattern) = b.get_message(id).and_then(|m| m.value()) {
            let mut errors = Vec::new();
            let s = b.format_pattern(pattern, Some(&fargs), &mut errors);
            if !errors.is_empty() {
                tracing::warn!(id, lang = l.code(), ?errors, "message formatting");
            }
            return s.into_owned();
        }
    }
    id.to_string()
}

/// [`tr`] in the current language.
pub fn t(id: &str, args: &[(&str, FluentValue)]) -> String {
    tr(current(), id, args)
}

static CURRENT: AtomicU8 = AtomicU8::new(u8::MAX);

/// The language of the tray and the popups' buttons: set by the monitor from the settings,
/// else the desktop's.
pub fn current() -> Lang {
    match CURRENT.load(Ordering::Relaxed) {
        0 => Lang::En,
        1 => Lang::De,
        2 => Lang::Fr,
        _ => Lang::from_env(),
    }
}

pub fn set_current(lang: Lang) {
    let n = Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0);
    CURRENT.store(n as u8, Ordering::Relaxed);
}

/// A vendor enum text (Saveris `alarm_condition_type`, …) in `lang` when we know it, else as
/// received.
pub fn vendor(lang: Lang, received: &str) -> String {
    let id = match received
        .trim()
        .to_ascii_lowercase()
        .replace(['_', '-'], " ")
        .as_str()
    {
        "upper limit" | "upper alarm limit" | "upperlimit" => "condition-upper-limit",
        "lower limit" | "lower alarm limit" | "lowerlimit" => "condition-lower-limit",
        "upper warning limit" | "upper warning" => "condition-upper-warning",
        "lower warning limit" | "lower warning" => "condition-lower-warning",
        "alarm" => "severity-alarm",
        "warning" => "severity-warning",
        _ => return received.to_string(),
    };
    tr(lang, id, &[])
}
