mod smoke { #[test] fn links() { assert!(!alarm_tray::VERSION.is_empty()); } }
mod peers;
mod saveris;
