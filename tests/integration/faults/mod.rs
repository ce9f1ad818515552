//! Issue 8, measured: the fault cases. Each case drives the real feed into the real engine
//! (SQLite history in a temp dir, a recording notifier), breaks something on purpose, and
//! prints its figures as one `FAULT-FIGURES {json}` line (sent, stored, notified,
//! duplicates, detection/recovery time) before asserting no loss and no duplicate.
//!
//! `make test` runs every case at a size that fits its time budget; `make soak` sets
//! `ALARM_TRAY_SOAK=1` for the sizes of the issue (20 broker kills in 5,000 alarms, minutes
//! without network, …). The figures of both go to `docs/RELIABILITY.md`.
//!
//! The suites: `delivery` (cases 1, 3, 4, 5, 8: nothing lost or doubled when a peer, the
//! app or the disk fails), `network` (cases 2, 6, 7: dead links, suspend, no network),
//! `bad_input`, `secrets` and `attack_surface`. `harness` and `app_child` are what they
//! share; the token-expiry peer of case 3 lives with the other peers
//! (`peers::token_broker`).

mod app_child;
mod attack_surface;
mod bad_input;
mod delivery;
mod harness;
mod network;
mod secrets;
