//! The audit trail: an append-only, hash-chained log of what happened to alarms and to the
//! app (raised, got worse, cleared, popup shown, acknowledged with who and why, paused and
//! resumed, rules and accounts changed, started and stopped).
//!
//! It lives in its own SQLite file beside the history (`audit.sqlite3`), not in a table of
//! the history database: the history is pruned after `retention_days` and a damaged history
//! file is moved aside and started anew, and neither may touch the audit trail, which has its
//! own retention (`audit_retention_days`, 2 years by default) and can be copied or archived
//! on its own.
//!
//! Each record holds the SHA-256 of the record before it (`prev`) and its own hash over
//! `prev`, its number, time, kind and detail. [`verify`] walks the chain and names the first
//! record that was changed, removed or moved. Pruning deletes the oldest records and keeps
//! the number and hash of the last deleted one as the chain's anchor.
//!
//! Records are written by their own thread, several to a transaction, so a storm of alarms
//! costs the engine no fsync of its own.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The trail's file name, beside the history database.
pub const AUDIT_FILE: &str = "audit.sqlite3";

/// The `prev` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("there is no audit trail at {0}")]
    Missing(PathBuf),
}

/// One record as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    /// JSON object: what the record is about (never a secret).
    pub detail: String,
    pub prev: String,
    pub hash: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AuditReport {
    pub intact: bool,
    /// Records checked (all of them when intact).
    pub records: u64,
    /// The number of the first record changed, removed or moved.
    pub first_bad: Option<i64>,
    /// What is wrong, in words (empty when intact).
    pub problem: String,
    /// The hash of the newest record: written down elsewhere, it also proves that no
    /// record was removed from the end.
    pub head: String,
}

/// The record's hash: SHA-256 over the previous hash and the record's own fields.
pub fn record_hash(prev: &str, seq: i64, at_ms: i64, kind: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), &at_ms.to_string(), kind, detail] {
        // Lengths first, so no two different records hash the same bytes.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

/// Lower-case hex of `bytes` (one allocation: this runs once per record on the audit thread).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn setup(c: &Connection) -> Result<(), AuditError> {
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    if c.path().is_some_and(|p| !p.is_empty()) {
        let _mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    }
    c.execute_batch("PRAGMA synchronous=FULL;")?;
    c.execute_batch(SCHEMA)?;
    Ok(())
}

/// Appends records in one transaction, each chained to the one before.
pub fn append(c: &mut Connection, records: &[(i64, String, String)]) -> Result<(), AuditError> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (mut seq, mut prev) = match last {
        Some(l) => l,
        None => anchor(&tx)?,
    };
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO audit (seq, at_ms, kind, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (at_ms, kind, detail) in records {
            seq += 1;
            let hash = record_hash(&prev, seq, *at_ms, kind, detail);
            st.execute(params![seq, at_ms, kind, detail, prev, hash])?;
            prev = hash;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Where the chain starts: after the last pruned record, or the genesis.
fn anchor(c: &Connection) -> Result<(i64, String), AuditError> {
    Ok(
        c.query_row("SELECT seq, hash FROM audit_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .unwrap_or((0, GENESIS.to_string())),
    )
}

/// Walks the whole chain and names the first record that does not fit.
pub fn verify(c: &Connection) -> Result<AuditReport, AuditError> {
    let (anchor_seq, mut prev) = anchor(c)?;
    let mut expected = anchor_seq + 1;
    let mut records = 0u64;
    let mut st =
        c.prepare("SELECT seq, at_ms, kind, detail, prev, hash FROM audit ORDER BY seq")?;
    let mut rows = st.query([])?;
    let bad = |records: u64, seq: i64, head: &str, problem: String| AuditReport {
        intact: false,
        records,
        first_bad: Some(seq),
        problem,
        head: head.to_string(),
    };
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let at_ms: i64 = r.get(1)?;
        let kind: String = r.get(2)?;
        let detail: String = r.get(3)?;
        let stored_prev: String = r.get(4)?;
        let stored_hash: String = r.get(5)?;
        if seq != expected {
            return Ok(bad(
                records,
                expected,
                &prev,
                format!("record {expected} was removed (the next record is {seq})"),
            ));
        }
        if record_hash(&stored_prev, seq, at_ms, &kind, &detail) != stored_hash {
            return Ok(bad(
                records,
                seq,
                &prev,
                format!("record {seq} was changed or moved (its content does not match its hash)"),
            ));
        }
        if stored_prev != prev {
            return Ok(bad(
                records,
                seq,
                &prev,
                format!(
                    "record {seq} does not follow record {}: one of them was changed, removed or moved",
                    seq - 1
                ),
            ));
        }
        prev = stored_hash;
        records += 1;
        expected += 1;
    }
    Ok(AuditReport {
        intact: true,
        records,
        first_bad: None,
        problem: String::new(),
        head: prev,
    })
}

/// Opens the trail at `path` read-only and verifies it (`alarm-tray audit verify`).
pub fn verify_file(path: &Path) -> Result<AuditReport, AuditError> {
    if !path.exists() {
        return Err(AuditError::Missing(path.to_path_buf()));
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    verify(&c)
}

/// Deletes records older than `cutoff_ms` and moves the anchor to the last one deleted.
pub fn prune_before(c: &mut Connection, cutoff_ms: i64) -> Result<usize, AuditError> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Only a prefix of the chain may go: stop at the first record that is new enough.
    let last_old: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit WHERE seq < coalesce((SELECT min(seq) FROM audit WHERE at_ms >= ?1), \
             (SELECT max(seq) + 1 FROM audit)) ORDER BY seq DESC LIMIT 1",
            params![cutoff_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, hash)) = last_old else {
        return Ok(0);
    };
    let n = tx.execute("DELETE FROM audit WHERE seq <= ?1", params![seq])?;
    tx.execute(
        "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?1, ?2) \
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        params![seq, hash],
    )?;
    tx.commit()?;
    Ok(n)
}

enum Job {
    Record(i64, String, String),
    /// The records of one engine batch, written in one transaction (issue 28).
    Records(Vec<(i64, String, String)>),
    Flush(mpsc::Sender<()>),
    Prune(i64),
}

/// Records made while the trail is held ([`AuditLog::hold`]): sent together on release.
#[derive(Default)]
struct Held {
    depth: usize,
    records: Vec<(i64, String, String)>,
}

/// The running audit trail: records go to its writer thread. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: Arc<Mutex<mpsc::Sender<Job>>>,
    /// Issue 28: the engine holds the trail while it handles a batch, so the batch's records
    /// reach the writer as one job and cost one commit (one fsync), not one each.
    held: Arc<Mutex<Held>>,
    /// Transactions the writer committed (the bench and tests count them).
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// The last write failure while records wait to be written again (None once written).
    error: Arc<Mutex<Option<String>>>,
    /// A second connection for [`AuditLog::verify`] (the in-memory trail shares the writer's).
    read: Arc<Mutex<Connection>>,
}

impl AuditLog {
    /// Opens (or creates) the trail at `path`.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let write = Connection::open(path)?;
        setup(&write)?;
        let read = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        read.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self::start(write, Arc::new(Mutex::new(read)), None))
    }

    /// A trail in memory (tests, in-memory history).
    pub fn open_in_memory() -> Result<AuditLog, AuditError> {
        // One connection shared by the writer and verify: a second would see another database.
        let c = Connection::open_in_memory()?;
        setup(&c)?;
        let shared = Arc::new(Mutex::new(c));
        let placeholder = Connection::open_in_memory()?;
        Ok(Self::start(placeholder, shared.clone(), Some(shared)))
    }

    fn start(
        write: Connection,
        read: Arc<Mutex<Connection>>,
        shared: Option<Arc<Mutex<Connection>>>,
    ) -> AuditLog {
        let (tx, rx) = mpsc::channel::<Job>();
        let error = Arc::new(Mutex::new(None));
        let e = error.clone();
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = commits.clone();
        let spawned = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer(write, shared, rx, e, counted));
        if let Err(e) = spawned {
            tracing::error!("the audit trail's writer could not start: {e}");
            *error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("the audit trail's writer could not start: {e}"));
        }
        AuditLog {
            tx: Arc::new(Mutex::new(tx)),
            held: Arc::new(Mutex::new(Held::default())),
            commits,
            error,
            read,
        }
    }

    fn send(&self, job: Job) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .is_ok()
    }

    /// Why records could not be written, while they wait to be written again (shown in the
    /// status line: the trail is behind).
    pub fn write_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes writes of an in-memory trail fail (as on a full disk) or work again.
    #[doc(hidden)]
    pub fn break_writes_for_test(&self, broken: bool) {
        let sql = if broken {
            "PRAGMA query_only = ON"
        } else {
            "PRAGMA query_only = OFF"
        };
        let _ = self
            .read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute_batch(sql);
    }

    /// Queues one record; `detail` is a JSON object.
    pub fn record(&self, at_ms: i64, kind: &str, detail: serde_json::Value) {
        let detail = detail.to_string();
        {
            // Decided under the lock, so a record never overtakes one held before it.
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held.depth > 0 {
                held.records.push((at_ms, kind.to_string(), detail));
                return;
            }
            if self.send(Job::Record(at_ms, kind.to_string(), detail)) {
                return;
            }
        }
        tracing::error!(kind, "audit record lost: the writer has stopped");
    }

    /// Holds the records made until the returned guard is dropped, then queues them as one
    /// job: the writer commits them in one transaction. Holds nest.
    pub fn hold(&self) -> AuditHold {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).depth += 1;
        AuditHold { log: self.clone() }
    }

    /// Queues the held records (the outermost hold ends, or a flush).
    fn release(&self, end_hold: bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if end_hold {
            held.depth = held.depth.saturating_sub(1);
            if held.depth > 0 {
                return;
            }
        }
        if held.records.is_empty() {
            return;
        }
        let records = std::mem::take(&mut held.records);
        let n = records.len();
        if !self.send(Job::Records(records)) {
            tracing::error!(n, "audit records lost: the writer has stopped");
        }
    }

    /// Transactions the writer has committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (up to 5 s) until every queued record is written (held ones included).
    pub fn flush(&self) {
        self.release(false);
        let (done, rx) = mpsc::channel();
        if self.send(Job::Flush(done)) {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    /// Deletes records older than `cutoff_ms` (in the writer's order, after what is queued).
    pub fn prune_before(&self, cutoff_ms: i64) {
        self.send(Job::Prune(cutoff_ms));
    }

    /// Every record, oldest first (tests, diagnostics).
    pub fn records(&self) -> Result<Vec<AuditRecord>, AuditError> {
        self.flush();
        let c = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let mut st =
            c.prepare("SELECT seq, at_ms, kind, detail, prev, hash FROM audit ORDER BY seq")?;
        let rows = st.query_map([], |r| {
            Ok(AuditRecord {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                kind: r.get(2)?,
                detail: r.get(3)?,
                prev: r.get(4)?,
                hash: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Verifies the chain as written so far.
    pub fn verify(&self) -> Result<AuditReport, AuditError> {
        self.flush();
        verify(&self.read.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Ends a hold of the trail ([`AuditLog::hold`]).
pub struct AuditHold {
    log: AuditLog,
}

impl Drop for AuditHold {
    fn drop(&mut self) {
        self.log.release(true);
    }
}

/// The writer thread: takes all that waits and writes it in one transaction.
fn writer(
    mut own: Connection,
    shared: Option<Arc<Mutex<Connection>>>,
    rx: mpsc::Receiver<Job>,
    error: Arc<Mutex<Option<String>>>,
    commits: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut prune = None;
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Record(at, kind, detail) => batch.push((at, kind, detail)),
                Job::Records(mut records) => batch.append(&mut records),
                Job::Flush(done) => flushes.push(done),
                Job::Prune(cutoff) => prune = Some(cutoff),
            }
            next = if batch.len() < 512 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let mut guard = shared
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        let c: &mut Connection = match guard.as_deref_mut() {
            Some(c) => c,
            None => &mut own,
        };
        if !batch.is_empty() {
            // A failed write is tried again with the next batch: records stay in order.
            match append(c, &batch) {
                Ok(()) => {
                    batch.clear();
                    commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    *error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Err(e) => {
                    tracing::error!("could not write the audit trail: {e}");
                    *error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
            }
        }
        if let Some(cutoff) = prune {
            match prune_before(c, cutoff) {
                Ok(n) if n > 0 => tracing::info!("pruned {n} old audit records"),
                Ok(_) => {}
                Err(e) => tracing::warn!("could not prune the audit trail: {e}"),
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: i64) -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        setup(&c).unwrap();
        let records: Vec<_> = (1..=n)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 1000,
                    "alarm_raised".to_string(),
                    format!("{{\"alarm_id\":{i},\"sensor\":\"fridge-{i}\"}}"),
                )
            })
            .collect();
        append(&mut c, &records).unwrap();
        c
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = trail(50);
        let r = verify(&c).unwrap();
        assert!(r.intact, "{r:?}");
        assert_eq!(r.records, 50);
        assert_eq!(r.first_bad, None);
    }

    #[test]
    fn one_changed_byte_is_found_with_its_number() {
        let c = trail(20);
        c.execute(
            "UPDATE audit SET detail = replace(detail, 'fridge-7', 'fridge-8') WHERE seq = 7",
            [],
        )
        .unwrap();
        let r = verify(&c).unwrap();
        assert!(!r.intact);
        assert_eq!(r.first_bad, Some(7));
        assert_eq!(r.records, 6);
        assert!(r.problem.contains("record 7 was changed"), "{}", r.problem);
    }

    #[test]
    fn a_changed_record_with_a_recomputed_hash_breaks_the_next_link() {
        let c = trail(20);
        let prev: String = c
            .query_row("SELECT prev FROM audit WHERE seq = 7", [], |r| r.get(0))
            .unwrap();
        let forged = record_hash(&prev, 7, 1, "alarm_raised", "{}");
        c.execute(
            "UPDATE audit SET at_ms = 1, detail = '{}', hash = ?1 WHERE seq = 7",
            [forged],
        )
        .unwrap();
        let r = verify(&c).unwrap();
        assert_eq!(r.first_bad, Some(8), "{r:?}");
    }

    #[test]
    fn a_removed_record_is_found_with_its_number() {
        let c = trail(20);
        c.execute("DELETE FROM audit WHERE seq = 12", []).unwrap();
        let r = verify(&c).unwrap();
        assert!(!r.intact);
        assert_eq!(r.first_bad, Some(12));
        assert!(r.problem.contains("record 12 was removed"), "{}", r.problem);
    }

    #[test]
    fn two_swapped_records_are_found_at_the_first() {
        let c = trail(20);
        // Swap everything but the number between records 4 and 5 (what a reorder looks like
        // when the numbers stay in sequence).
        c.execute_batch(
            "UPDATE audit SET seq = -4 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 5; \
             UPDATE audit SET seq = 5 WHERE seq = -4;",
        )
        .unwrap();
        let r = verify(&c).unwrap();
        assert!(!r.intact);
        assert_eq!(r.first_bad, Some(4), "{r:?}");
    }

    #[test]
    fn pruning_keeps_the_rest_of_the_chain_verifiable() {
        let mut c = trail(30);
        // Records 1..=10 are older than the cutoff.
        let n = prune_before(&mut c, 1_700_000_000_000 + 10_500).unwrap();
        assert_eq!(n, 10);
        let r = verify(&c).unwrap();
        assert!(r.intact, "{r:?}");
        assert_eq!(r.records, 20);
        append(
            &mut c,
            &[(1_800_000_000_000, "app_stopped".into(), "{}".into())],
        )
        .unwrap();
        let r = verify(&c).unwrap();
        assert!(r.intact, "{r:?}");
        assert_eq!(r.records, 21);
        // Removing the new first record is still found.
        c.execute("DELETE FROM audit WHERE seq = 11", []).unwrap();
        assert_eq!(verify(&c).unwrap().first_bad, Some(11));
    }

    /// Issue 28: what is recorded while the trail is held costs one transaction, in order
    /// with what came before and after.
    #[test]
    fn held_records_are_one_commit_and_keep_the_chain() {
        let log = AuditLog::open_in_memory().unwrap();
        log.record(1, "app_started", serde_json::json!({}));
        log.flush();
        let before = log.commits();
        {
            let _outer = log.hold();
            for i in 0..40 {
                log.record(10 + i, "alarm_raised", serde_json::json!({ "alarm_id": i }));
            }
            {
                let _inner = log.hold();
                log.record(60, "popup_shown", serde_json::json!({ "alarm_id": 0 }));
            }
            // The inner hold ended, the outer one has not: nothing was sent yet.
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(log.commits(), before);
        }
        log.record(70, "alarm_cleared", serde_json::json!({ "alarm_id": 0 }));
        log.flush();
        assert!(log.commits() <= before + 2, "{}", log.commits() - before);
        let records = log.records().unwrap();
        let kinds: Vec<_> = records.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(records.len(), 43);
        assert_eq!(kinds[0], "app_started");
        assert_eq!(kinds[41], "popup_shown");
        assert_eq!(kinds[42], "alarm_cleared");
        assert!(log.verify().unwrap().intact);
    }

    #[test]
    fn hex_matches_the_formatted_digest() {
        let bytes = [0u8, 1, 0x0f, 0x10, 0xab, 0xff];
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), formatted);
        // A record's hash keeps its value from before (chains written earlier still verify).
        assert_eq!(record_hash(GENESIS, 1, 2, "k", "{}"), {
            let mut h = Sha256::new();
            for part in [GENESIS, "1", "2", "k", "{}"] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
            h.finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
    }

    #[test]
    fn the_log_writes_in_order_and_verifies() {
        let log = AuditLog::open_in_memory().unwrap();
        for i in 0..100 {
            log.record(i, "popup_shown", serde_json::json!({ "alarm_id": i }));
        }
        let r = log.verify().unwrap();
        assert!(r.intact, "{r:?}");
        assert_eq!(r.records, 100);
    }
}
