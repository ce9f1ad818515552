//! Feeds arbitrary bytes as the settings file: the loader must never panic; what it accepts
//! must survive a save/load round trip unchanged; a file it rejects is moved aside and
//! defaults are used, with a notice for the user.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src-tauri/src/settings.rs"]
mod settings;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("alarm-tray-fuzz-settings-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = settings::from_store_json(&text) {
        let _ = s.validate();
        let again = settings::to_store_json(&s).to_string();
        let back = settings::from_store_json(&again).expect("saved settings load again");
        assert_eq!(back, s, "a save/load round trip changes nothing");
    }

    // The file path: exactly what the monitor does at start.
    let path = dir().join("settings.json");
    std::fs::write(&path, data).unwrap();
    let loaded = settings::load(&path);
    match settings::from_store_json(&text) {
        Ok(_) if std::str::from_utf8(data).is_ok() => assert!(loaded.notice.is_none()),
        _ => assert!(loaded.notice.is_some(), "a rejected file is reported"),
    }
    for e in std::fs::read_dir(dir()).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
});
