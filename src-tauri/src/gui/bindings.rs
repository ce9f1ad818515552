//! The TypeScript declarations of everything the window's web UI receives and sends,
//! generated from the Rust types (ts-rs) into `ui/src/bindings.ts`, so the two cannot
//! drift: the test below fails while the checked-in file differs from what the types say.
//! `make bindings` writes it anew (`ALARM_TRAY_WRITE_BINDINGS=1` on that test).

use std::path::{Path, PathBuf};

use ts_rs::{Config, TS};

use super::window_app::{DownloadDone, InitialPage};
use crate::engine::model::{
    AlarmFilter, AlarmRow, LatestValue, SeverityStep, Snooze, SnoozeFor, Status, TrayState,
    UnparsedRow,
};
use crate::engine::reduce::{Bucket, LimitLine, LimitOrigin, RangeStats, SensorView};
use crate::event::{ChannelRefusal, FeedState, FeedStatus, NamedItem, Severity, Source};
use crate::ipc::protocol::{Connected, ConnectionTest, Discover, Info, Page, Push};
use crate::ipc::Error;
use crate::secrets::SecretKey;
use crate::settings::{
    Channels, CustomEndpoint, ElementAccount, ElementKind, ElementScope, ElementSubscription,
    Environment, Limit, LoginMethod, Notifications, QuietHours, Region, Ringing, RuleTarget,
    SaverisAccount, SensorPrefs, Settings, ThresholdRule,
};

const HEADER: &str = "\
// Generated from the Rust types by ts-rs (src-tauri/src/gui/bindings.rs): do not edit.
// `make bindings` writes it anew; `make test` and `make check` fail while it is out of date.
";

/// The generated file in the UI's sources.
fn bindings_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts")
}

/// One declaration of a type: its doc comment, `export type Name = …;`, and the names of
/// the types it refers to.
struct Decl {
    name: String,
    text: String,
    uses: Vec<String>,
}

fn decl<T: TS + 'static>(cfg: &Config) -> Decl {
    let mut text = T::docs().unwrap_or_default();
    text.push_str("export ");
    text.push_str(&T::decl(cfg));
    Decl {
        name: T::ident(cfg),
        text,
        uses: T::dependencies(cfg)
            .into_iter()
            .map(|d| d.ts_name)
            .collect(),
    }
}

fn declarations() -> Vec<Decl> {
    // Ids, times in ms and counts are far below 2^53: plain numbers, as serde_json writes them.
    let cfg = Config::new().with_large_int("number");
    macro_rules! decls {
        ($($t:ty),* $(,)?) => { vec![$(decl::<$t>(&cfg)),*] };
    }
    decls![
        // settings.rs
        Region,
        Environment,
        LoginMethod,
        Channels,
        CustomEndpoint,
        SaverisAccount,
        ElementScope,
        ElementKind,
        ElementSubscription,
        ElementAccount,
        RuleTarget,
        Limit,
        ThresholdRule,
        QuietHours,
        crate::notify::Sound,
        crate::settings::TeamSettings,
        Ringing,
        Notifications,
        SensorPrefs,
        // Issue 21: escalation webhooks.
        crate::settings::Escalation,
        crate::settings::Webhook,
        crate::settings::WebhookKind,
        Settings,
        // secrets.rs
        SecretKey,
        // event.rs
        Source,
        Severity,
        FeedState,
        FeedStatus,
        ChannelRefusal,
        NamedItem,
        // engine/model.rs
        AlarmFilter,
        AlarmRow,
        SeverityStep,
        LatestValue,
        crate::engine::names::SensorPlace,
        UnparsedRow,
        Snooze,
        SnoozeFor,
        TrayState,
        crate::engine::audit::AuditReport,
        Status,
        // team/ (issue 26)
        crate::team::Peer,
        crate::team::TeamStatus,
        // engine/reduce.rs
        Bucket,
        LimitLine,
        LimitOrigin,
        RangeStats,
        SensorView,
        // ipc/protocol.rs, ipc/error.rs and the window's own answers
        Page,
        InitialPage,
        DownloadDone,
        ConnectionTest,
        Connected,
        crate::ipc::protocol::Saved,
        Discover,
        Info,
        Push,
        Error,
    ]
}

/// The whole of `ui/src/bindings.ts`.
fn typescript() -> String {
    let decls = declarations();
    let mut out = String::from(HEADER);
    for d in &decls {
        out.push('\n');
        out.push_str(&d.text);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type a declaration refers to is declared in the file too.
    #[test]
    fn every_referenced_type_is_declared() {
        let decls = declarations();
        let names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
        for d in &decls {
            for used in &d.uses {
                assert!(
                    names.contains(&used.as_str()),
                    "{} uses {used}, which bindings.rs does not declare",
                    d.name
                );
            }
        }
        // A field typed by hand (`#[ts(type = …)]`) names its types outside ts-rs's view.
        assert!(typescript().contains("source: \"\" | Source"));
    }

    /// The checked-in `ui/src/bindings.ts` is what the Rust types say. With
    /// `ALARM_TRAY_WRITE_BINDINGS=1` (`make bindings`) the test writes it instead.
    #[test]
    fn ui_bindings_are_up_to_date() {
        let path = bindings_path();
        let want = typescript();
        if std::env::var_os("ALARM_TRAY_WRITE_BINDINGS").is_some_and(|v| v == "1") {
            std::fs::write(&path, &want).expect("write ui/src/bindings.ts");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/src/bindings.ts is out of date with the Rust types: run `make bindings` \
             and commit the result"
        );
    }
}
