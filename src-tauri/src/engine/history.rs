//! History in SQLite: events, alarms, acknowledgements, per-subscription cursors and
//! per-sensor last values.
//!
//! One writer (the engine) and a separate read connection for the UI's queries, so a query
//! never waits for a write batch (WAL mode). Writes go through [`History::write`]: one
//! transaction per batch of deliveries, so the feed's ack follows one commit and one fsync,
//! not one per event. The writer runs `synchronous=FULL` in WAL mode: each commit returns
//! only after the log is on disk, so when the engine confirms a delivery (and the feed sends
//! its ACK) the event survives a power cut or a kernel crash too, not only a crash of the
//! app. The cost is one fsync per batch; batches grow when the disk is slow (the engine
//! takes all that waits, up to `BATCH`), so the fsync is shared by more events under load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use super::audit::{AuditLog, AUDIT_FILE};
use super::model::{AlarmFilter, AlarmRow, LatestValue, SeverityStep, Snooze, UnparsedRow};
use crate::event::{Event, Severity, Source};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("could not open the history database {path}: {message}")]
    Open { path: PathBuf, message: String },
}

impl HistoryError {
    /// Disk full, read-only directory, I/O error: the user must act; retrying later may work.
    pub fn is_storage_problem(&self) -> bool {
        matches!(
            self,
            HistoryError::Sql(rusqlite::Error::SqliteFailure(_, _))
        ) || matches!(self, HistoryError::Open { .. })
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    account TEXT NOT NULL,
    subscription TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT,
    sensor TEXT,
    name TEXT,
    quantity TEXT,
    value REAL,
    unit TEXT,
    fields TEXT,
    alarm_key TEXT,
    condition TEXT,
    severity TEXT NOT NULL,
    measured_ms INTEGER,
    received_ms INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    replayed INTEGER NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_received ON events(received_ms);
-- A sensor's readings by time, with kind and value in the index so that a range (the sensor
-- view's 30 days, the sparklines, the report) never reads the table's rows, which carry the
-- raw body (issue 27: 166 ms → 49 ms for 43,200 readings of one sensor out of 864,000).
-- Replaces `events_sensor_at (sensor, at_ms)` of earlier versions: built once at the first
-- start after the update (about 1.5 s per million events).
DROP INDEX IF EXISTS events_sensor_at;
CREATE INDEX IF NOT EXISTS events_sensor_at_value ON events(sensor, at_ms, kind, value)
    WHERE sensor IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_unparsed ON events(id) WHERE kind = 'unparsed';
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY,
    alarm_key TEXT NOT NULL,
    source TEXT NOT NULL,
    account TEXT NOT NULL,
    device TEXT,
    sensor TEXT,
    name TEXT,
    condition TEXT,
    severity TEXT NOT NULL,
    value REAL,
    unit TEXT,
    limit_text TEXT,
    rule_id TEXT,
    event_id INTEGER,
    raised_ms INTEGER NOT NULL,
    cleared_ms INTEGER,
    acknowledged_ms INTEGER,
    acknowledged_by TEXT,
    notified_ms INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_active ON alarms(alarm_key) WHERE cleared_ms IS NULL;
CREATE INDEX IF NOT EXISTS alarms_raised ON alarms(raised_ms);
CREATE TABLE IF NOT EXISTS alarm_steps (
    id INTEGER PRIMARY KEY,
    alarm_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    severity TEXT NOT NULL,
    event_id INTEGER
);
CREATE INDEX IF NOT EXISTS alarm_steps_alarm ON alarm_steps(alarm_id);
CREATE TABLE IF NOT EXISTS acknowledgements (
    id INTEGER PRIMARY KEY,
    alarm_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT NOT NULL,
    account TEXT NOT NULL,
    subscription TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, account, subscription)
);
CREATE TABLE IF NOT EXISTS last_values (
    sensor TEXT NOT NULL,
    quantity TEXT NOT NULL,
    name TEXT,
    source TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (sensor, quantity)
);
INSERT OR IGNORE INTO meta (k, v) VALUES ('schema', '1');
-- Issue 20: what the vendors call each sensor, device and tag, where it is, and its
-- configured limits (Saveris Data API, ELEMENT REST); replaced per account on refresh.
CREATE TABLE IF NOT EXISTS names (
    source TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    device TEXT,
    device_name TEXT,
    channel TEXT,
    unit TEXT,
    equipment TEXT,
    area TEXT,
    location TEXT,
    tenant TEXT,
    timezone TEXT,
    lower_violation REAL,
    lower_warning REAL,
    upper_warning REAL,
    upper_violation REAL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (source, account, kind, id)
);
-- Issue 20: the last refresh of an account's names, and the last failure since.
CREATE TABLE IF NOT EXISTS names_refresh (
    source TEXT NOT NULL,
    account TEXT NOT NULL,
    ok_ms INTEGER,
    failed_ms INTEGER,
    message TEXT,
    PRIMARY KEY (source, account)
);
-- Issue 21: per-sensor snoozes (active while ended_ms is NULL and until_ms is ahead).
CREATE TABLE IF NOT EXISTS snoozes (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    name TEXT,
    at_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    user TEXT NOT NULL,
    ended_ms INTEGER
);
-- Issue 26: what this PC shares with the team, written in the transaction of what it
-- shares, deleted when the broker acknowledged it (PUBACK). AUTOINCREMENT: an id is never
-- given twice, even after the newest rows were deleted; the publisher reads after the highest
-- id it sent, so a reused id would never be sent.
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    tail TEXT NOT NULL,
    retain INTEGER NOT NULL,
    body TEXT,
    at_ms INTEGER NOT NULL
);
-- Issue 21: each critical alarm sent (or being sent) to a webhook, one row per webhook.
CREATE TABLE IF NOT EXISTS escalations (
    alarm_id INTEGER NOT NULL,
    webhook TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    started_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (alarm_id, webhook)
);
";

/// One escalation of an alarm to a webhook (issue 21).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EscalationRow {
    pub alarm_id: i64,
    pub webhook: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// A row of the team outbox (issue 26): published as `alarm-tray/<site>/<kind>/<tail>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: String,
    pub tail: String,
    pub retain: bool,
    /// JSON; `None` publishes an empty retained message.
    pub body: Option<String>,
    pub at_ms: i64,
}

/// A sensor's readings in a range, read from the index alone (`events_sensor_at_value`).
const SERIES_BETWEEN: &str = "SELECT at_ms, value FROM events WHERE sensor = ?1 AND at_ms >= ?2 \
     AND at_ms < ?3 AND value IS NOT NULL AND kind IN ('measurement', 'reading') \
     ORDER BY at_ms LIMIT ?4";

struct Inner {
    write: Mutex<Connection>,
    /// `None` for in-memory databases (a second connection would see another database).
    read: Option<Mutex<Connection>>,
    notice: Option<String>,
    /// Set by the checkpointer when the log is past its limit and a RESTART could not get
    /// in between the writer's transactions: the writer restarts it after its next commit.
    restart_wal: std::sync::atomic::AtomicBool,
    /// Write transactions committed (issue 28: each is one fsync of the log; the bench
    /// reports them per 1,000 messages).
    commits: std::sync::atomic::AtomicU64,
    /// The audit trail, in its own file beside this one (see `audit`); `Err`: why it
    /// could not be opened (the General page and `audit verify` say so).
    audit: Result<AuditLog, String>,
}

/// The history database. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

/// An alarm to record (raised by the upstream or by a rule).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlarm {
    /// Identity of the condition: a clear of the same key clears this alarm.
    pub alarm_key: String,
    pub source: Source,
    pub account: String,
    pub device: Option<String>,
    pub sensor: Option<String>,
    pub name: Option<String>,
    pub condition: Option<String>,
    pub severity: Severity,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub limit: Option<String>,
    pub rule_id: Option<String>,
    pub event_id: Option<i64>,
    pub raised_ms: i64,
}

/// An active alarm as the engine reloads it at start.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlarm {
    pub row: AlarmRow,
    pub alarm_key: String,
    pub rule_id: Option<String>,
    pub notified_ms: Option<i64>,
}

fn ms(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

fn severity_str(s: Severity) -> &'static str {
    s.as_str()
}

fn parse_severity(s: &str) -> Severity {
    match s {
        "alarm" => Severity::Alarm,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

/// The source column; a name this version does not know (a newer version wrote it) reads
/// as the app's own, as an unknown severity reads as info: one odd row must not hide the
/// others.
fn source_at(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Source> {
    let s: String = r.get(idx)?;
    Ok(Source::parse(&s).unwrap_or(Source::App))
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Adds a column to a table of an older database (no-op when it is there already).
fn add_column(c: &Connection, table: &str, column: &str, ty: &str) -> Result<(), HistoryError> {
    let exists: bool = c.query_row(
        &format!("SELECT count(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
        params![column],
        |r| r.get(0),
    )?;
    if !exists {
        c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
    }
    Ok(())
}

/// The first team builds made the outbox without AUTOINCREMENT, so SQLite gave the id of
/// deleted (acknowledged) newest rows again and the publisher, reading after the highest id
/// it sent, skipped them. Rebuilds such a table keeping its rows and their order.
fn outbox_ids_never_reused(c: &Connection) -> Result<(), HistoryError> {
    let sql: String = c.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
        [],
        |r| r.get(0),
    )?;
    if sql.contains("AUTOINCREMENT") {
        return Ok(());
    }
    // Rolled back on drop if any step fails: the old table stays as it was.
    let tx = c.unchecked_transaction()?;
    tx.execute_batch(
        "ALTER TABLE outbox RENAME TO outbox_old;
         CREATE TABLE outbox (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             kind TEXT NOT NULL,
             tail TEXT NOT NULL,
             retain INTEGER NOT NULL,
             body TEXT,
             at_ms INTEGER NOT NULL
         );
         INSERT INTO outbox (id, kind, tail, retain, body, at_ms)
             SELECT id, kind, tail, retain, body, at_ms FROM outbox_old ORDER BY id;
         DROP TABLE outbox_old;",
    )?;
    tx.commit()?;
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
    // back on drop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl History {
    /// Opens (or creates) the database at `path`. A file that is not a database or is
    /// corrupt is moved aside (`<name>.broken-<unix secs>`), a new one is created, and
    /// [`History::notice`] says so.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HistoryError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        match Self::open_file(path, None) {
            Ok(h) => Ok(h),
            Err(HistoryError::Sql(e)) if is_corrupt(&e) => {
                let secs = jiff::Timestamp::now().as_second();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let aside = path.with_file_name(format!("{name}.broken-{secs}"));
                std::fs::rename(path, &aside).map_err(|e| HistoryError::Open {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
                for ext in ["-wal", "-shm"] {
                    let side = path.with_file_name(format!("{name}{ext}"));
                    let _ = std::fs::remove_file(side);
                }
                let notice = format!(
                    "The history database was damaged; it was kept as {} and a new one was started.",
                    aside.display()
                );
                tracing::warn!("{notice}");
                Self::open_file(path, Some(notice))
            }
            Err(e) => Err(e),
        }
    }

    fn open_file(path: &Path, notice: Option<String>) -> Result<History, HistoryError> {
        let write = Connection::open(path)?;
        Self::setup(&write, true)?;
        let read = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        read.busy_timeout(std::time::Duration::from_secs(5))?;
        // Checkpoints (copying the log into the database, with their own fsyncs) run on
        // their own thread, so only the commit's one log fsync stands between a commit and
        // the acks.
        // No journal_size_limit: it shrinks the log file inside the writer's commit, which
        // stalled popups under load; the checkpointer shrinks it while nothing is written.
        write.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let audit_path = path.with_file_name(AUDIT_FILE);
        let audit = AuditLog::open(&audit_path).map_err(|e| {
            tracing::error!(
                "the audit trail {} could not be opened: {e}",
                audit_path.display()
            );
            e.to_string()
        });
        let inner = Arc::new(Inner {
            write: Mutex::new(write),
            read: Some(Mutex::new(read)),
            notice,
            restart_wal: Default::default(),
            commits: Default::default(),
            audit,
        });
        spawn_checkpointer(checkpointer, Arc::downgrade(&inner));
        Ok(History { inner })
    }

    pub fn open_in_memory() -> Result<History, HistoryError> {
        let write = Connection::open_in_memory()?;
        Self::setup(&write, false)?;
        Ok(History {
            inner: Arc::new(Inner {
                write: Mutex::new(write),
                read: None,
                notice: None,
                restart_wal: Default::default(),
                commits: Default::default(),
                audit: AuditLog::open_in_memory().map_err(|e| e.to_string()),
            }),
        })
    }

    fn setup(c: &Connection, file: bool) -> Result<(), HistoryError> {
        Self::setup_schema(c, file)?;
        // Who acknowledged (person, not channel) and why: added after schema 1 shipped.
        add_column(c, "alarms", "acknowledged_user", "TEXT")?;
        add_column(c, "alarms", "acknowledged_comment", "TEXT")?;
        add_column(c, "acknowledgements", "user", "TEXT")?;
        add_column(c, "acknowledgements", "comment", "TEXT")?;
        outbox_ids_never_reused(c)?;
        Ok(())
    }

    fn setup_schema(c: &Connection, file: bool) -> Result<(), HistoryError> {
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        if file {
            // journal_mode answers with a row; a garbage file fails here with NotADatabase.
            let _mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        }
        // FULL: a commit is on disk (the log fsynced) before it returns, and the engine
        // confirms deliveries only after it returns (durable before ACK).
        c.execute_batch("PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;")?;
        c.execute_batch(SCHEMA)?;
        c.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    /// The audit trail kept beside this history.
    pub fn audit(&self) -> Result<&AuditLog, &str> {
        self.inner.audit.as_ref().map_err(|e| e.as_str())
    }

    /// Something the user must read (the database was damaged and replaced).
    pub fn notice(&self) -> Option<&str> {
        self.inner.notice.as_deref()
    }

    fn read_conn(&self) -> MutexGuard<'_, Connection> {
        match &self.inner.read {
            Some(r) => lock(r),
            None => lock(&self.inner.write),
        }
    }

    /// Runs `f` in one write transaction; commits when it returns `Ok`. The commit is on
    /// disk when this returns (`synchronous=FULL`).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        let mut conn = lock(&self.inner.write);
        Self::write_on(&self.inner, &mut conn, f)
    }

    /// [`History::write`] for what need not be on disk before anything is confirmed
    /// (bookkeeping such as "popup shown"): committed without an fsync of its own
    /// (`synchronous=NORMAL` for this one transaction), it reaches the disk with the next
    /// durable commit's fsync of the log, or at the next checkpoint (issue 28: it was a
    /// second fsync per batch). A power cut before then loses only this bookkeeping.
    pub fn write_relaxed<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        let mut conn = lock(&self.inner.write);
        conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        let out = Self::write_on(&self.inner, &mut conn, f);
        // Every other write must stay durable: FULL again whatever happened.
        let restored = conn.execute_batch("PRAGMA synchronous=FULL");
        let out = out?;
        restored?;
        Ok(out)
    }

    fn write_on<T>(
        inner: &Inner,
        conn: &mut Connection,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        let tx = conn.transaction()?;
        let out = {
            let mut w = Writer {
                tx: &tx,
                insert: None,
            };
            f(&mut w)?
        };
        tx.commit()?;
        (inner.commits).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if inner
            .restart_wal
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // Between two of our own transactions: only readers can be in the way.
            let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
        }
        Ok(out)
    }

    /// When the newest measurement of an account was taken (issue 20: the backfill fills
    /// a gap longer than an hour).
    pub fn last_reading_ms(
        &self,
        source: Source,
        account: &str,
    ) -> Result<Option<i64>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT max(at_ms) FROM events WHERE source = ?1 AND account = ?2 AND kind IN ('measurement', 'reading')",
        )?;
        Ok(st.query_row(params![source.as_str(), account], |r| r.get(0))?)
    }

    /// Runs `f` on the read connection (issue 20's names queries live in `names.rs`).
    pub(crate) fn with_read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, HistoryError> {
        let c = self.read_conn();
        Ok(f(&c)?)
    }

    /// Subscription → cursor of one account.
    pub fn cursors(
        &self,
        source: Source,
        account: &str,
    ) -> Result<HashMap<String, String>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT subscription, cursor FROM cursors WHERE source = ?1 AND account = ?2",
        )?;
        let rows = st.query_map(params![source.as_str(), account], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn alarms(&self, f: &AlarmFilter) -> Result<Vec<AlarmRow>, HistoryError> {
        let (mut sql, args) = alarms_query(f);
        let limit = if f.limit == 0 {
            500
        } else {
            f.limit.min(10_000)
        };
        sql.push_str(&format!(
            " ORDER BY raised_ms DESC, id DESC LIMIT {limit} OFFSET {}",
            f.offset
        ));
        let c = self.read_conn();
        let mut st = c.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), alarm_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every alarm the filter matches, newest first, with no row cap (its `limit` and
    /// `offset` are ignored): handed to `each` one by one, so an export of years of
    /// alarms never holds them all in memory (issue 21).
    pub fn each_alarm<E: From<HistoryError>>(
        &self,
        f: &AlarmFilter,
        mut each: impl FnMut(AlarmRow) -> Result<(), E>,
    ) -> Result<u64, E> {
        let (mut sql, args) = alarms_query(f);
        sql.push_str(" ORDER BY raised_ms DESC, id DESC");
        let c = self.read_conn();
        let mut st = c.prepare(&sql).map_err(HistoryError::from)?;
        let mut rows = st
            .query(rusqlite::params_from_iter(args))
            .map_err(HistoryError::from)?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(HistoryError::from)? {
            each(alarm_row(r).map_err(HistoryError::from)?)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The alarms table's SELECT for a filter, without order and limit, and its arguments.
fn alarms_query(f: &AlarmFilter) -> (String, Vec<rusqlite::types::Value>) {
    {
        let mut sql = format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        // Every condition uses a numbered parameter: `?{n}` is the next argument's number.
        let mut cond = |sql: &mut String, text: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&text.replace("{n}", &args.len().to_string()));
        };
        match f.state.as_str() {
            "active" => sql.push_str(" AND cleared_ms IS NULL"),
            "cleared" => sql.push_str(" AND cleared_ms IS NOT NULL"),
            _ => {}
        }
        if let Some(s) = f.severity {
            cond(
                &mut sql,
                " AND severity = ?{n}",
                severity_str(s).to_string().into(),
            );
        }
        if let Some(s) = f.source {
            cond(
                &mut sql,
                " AND source = ?{n}",
                s.as_str().to_string().into(),
            );
        }
        if !f.device.is_empty() {
            // instr, not LIKE: `%` and `_` typed by the user are plain characters.
            cond(
                &mut sql,
                " AND (instr(lower(coalesce(device,'')), lower(?{n})) > 0 OR instr(lower(coalesce(sensor,'')), lower(?{n})) > 0 \
                 OR instr(lower(coalesce(name,'')), lower(?{n})) > 0)",
                f.device.clone().into(),
            );
        }
        if let Some(from) = f.from_ms {
            cond(&mut sql, " AND raised_ms >= ?{n}", from.into());
        }
        if let Some(to) = f.to_ms {
            cond(&mut sql, " AND raised_ms <= ?{n}", to.into());
        }
        (sql, args)
    }
}

impl History {
    /// The last value per sensor and quantity.
    pub fn latest_values(&self) -> Result<Vec<LatestValue>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT sensor, name, source, quantity, value, unit, at_ms FROM last_values ORDER BY sensor, quantity",
        )?;
        let rows = st.query_map([], |r| {
            let q: String = r.get(3)?;
            Ok(LatestValue {
                sensor: r.get(0)?,
                name: r.get(1)?,
                source: source_at(r, 2)?,
                quantity: if q.is_empty() { None } else { Some(q) },
                value: r.get(4)?,
                unit: r.get(5)?,
                at_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (time ms, value) of one sensor since `since_ms`, oldest first (at most 100,000 points).
    pub fn series(&self, sensor: &str, since_ms: i64) -> Result<Vec<(i64, f64)>, HistoryError> {
        self.series_between(sensor, since_ms, i64::MAX, 100_000)
    }

    /// (time ms, value) of one sensor in `[from_ms, to_ms)`, oldest first, at most `limit`
    /// points (issue 27: the sensor view reads a bounded range, also one in the past).
    pub fn series_between(
        &self,
        sensor: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<(i64, f64)>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(SERIES_BETWEEN)?;
        let rows = st.query_map(params![sensor, from_ms, to_ms, limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (time ms, value) of one quantity/field of a sensor since `since_ms`, oldest first:
    /// the event's value where its quantity is that name, else that field of its `fields`
    /// (ELEMENT readings carry every measurement there). Names compare case-insensitively.
    pub fn field_series(
        &self,
        sensor: &str,
        field: &str,
        since_ms: i64,
    ) -> Result<Vec<(i64, f64)>, HistoryError> {
        self.field_series_between(sensor, field, since_ms, i64::MAX, 100_000)
    }

    /// [`History::field_series`] in `[from_ms, to_ms)`, at most `limit` events read.
    pub fn field_series_between(
        &self,
        sensor: &str,
        field: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<(i64, f64)>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT at_ms, value, quantity, fields FROM events WHERE sensor = ?1 AND at_ms >= ?2 \
             AND at_ms < ?3 AND kind IN ('measurement', 'reading') ORDER BY at_ms LIMIT ?4",
        )?;
        let rows = st.query_map(params![sensor, from_ms, to_ms, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<f64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at, value, quantity, fields) = row?;
            let own = value.filter(|_| quantity.is_some_and(|q| q.eq_ignore_ascii_case(field)));
            let v = own.or_else(|| {
                let list: Vec<(String, f64)> = serde_json::from_str(fields.as_deref()?).ok()?;
                list.into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v)
            });
            out.extend(v.filter(|v| v.is_finite()).map(|v| (at, v)));
        }
        Ok(out)
    }

    /// The sensor's alarms that overlap `[from_ms, to_ms]` (raised before its end and not
    /// cleared before its start), oldest first. The alarms table is small next to the
    /// events, and `alarms_raised` bounds the scan: no index of its own needed.
    pub fn sensor_alarms(
        &self,
        sensor: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AlarmRow>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE sensor = ?1 AND raised_ms <= ?3 \
             AND (cleared_ms IS NULL OR cleared_ms >= ?2) ORDER BY raised_ms, id LIMIT 1000"
        ))?;
        let rows = st.query_map(params![sensor, from_ms, to_ms], alarm_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The devices, accounts and subscriptions the sensor's newest events came through
    /// (issue 27: a rule aimed at a device or an ELEMENT tag draws its limits in the sensor
    /// view). The newest 200 events cover every subscription that still delivers it, and
    /// the `events_sensor_at_value` index finds them without a scan.
    pub fn sensor_origins(
        &self,
        sensor: &str,
    ) -> Result<Vec<(Option<String>, String, String)>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT DISTINCT device, account, subscription FROM \
             (SELECT device, account, subscription FROM events WHERE sensor = ?1 \
              ORDER BY at_ms DESC LIMIT 200)",
        )?;
        let rows = st.query_map(params![sensor], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The unit last seen for a sensor's quantity (`None`: any quantity of it).
    pub fn sensor_unit(
        &self,
        sensor: &str,
        quantity: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT name, unit FROM last_values WHERE sensor = ?1 \
             AND (?2 IS NULL OR lower(quantity) = lower(?2)) ORDER BY quantity LIMIT 1",
        )?;
        Ok(st
            .query_row(params![sensor, quantity], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((None, None)))
    }

    pub fn unparsed(&self, limit: u32) -> Result<Vec<UnparsedRow>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT id, source, account, received_ms, raw FROM events WHERE kind = 'unparsed' ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map(params![limit.max(1)], |r| {
            Ok(UnparsedRow {
                id: r.get(0)?,
                source: source_at(r, 1)?,
                account: r.get(2)?,
                received_ms: r.get(3)?,
                raw: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes events and cleared alarms older than `retention_days`, in small chunks so the
    /// writer is never held for long. Returns how many rows went.
    pub fn prune(&self, retention_days: u32) -> Result<usize, HistoryError> {
        self.prune_before(
            jiff::Timestamp::now().as_millisecond() - i64::from(retention_days.max(1)) * 86_400_000,
        )
    }

    /// [`History::prune`] with an explicit cutoff (unix ms).
    pub fn prune_before(&self, cutoff_ms: i64) -> Result<usize, HistoryError> {
        let mut total = 0;
        loop {
            let n = lock(&self.inner.write).execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received_ms < ?1 LIMIT 5000)",
                params![cutoff_ms],
            )?;
            total += n;
            if n < 5000 {
                break;
            }
        }
        let c = lock(&self.inner.write);
        c.execute(
            "DELETE FROM acknowledgements WHERE alarm_id IN (SELECT id FROM alarms WHERE cleared_ms < ?1)",
            params![cutoff_ms],
        )?;
        c.execute(
            "DELETE FROM alarm_steps WHERE alarm_id IN (SELECT id FROM alarms WHERE cleared_ms < ?1)",
            params![cutoff_ms],
        )?;
        c.execute(
            "DELETE FROM escalations WHERE alarm_id IN (SELECT id FROM alarms WHERE cleared_ms < ?1)",
            params![cutoff_ms],
        )?;
        total += c.execute(
            "DELETE FROM alarms WHERE cleared_ms < ?1",
            params![cutoff_ms],
        )?;
        total += c.execute(
            "DELETE FROM last_values WHERE at_ms < ?1",
            params![cutoff_ms],
        )?;
        Ok(total)
    }

    /// Active (not cleared) alarms, for the engine's start.
    pub fn active_alarms(&self) -> Result<Vec<ActiveAlarm>, HistoryError> {
        let c = lock(&self.inner.write);
        let mut st = c.prepare_cached(&format!(
            "SELECT {ALARM_COLUMNS}, alarm_key, rule_id, notified_ms \
             FROM alarms WHERE cleared_ms IS NULL ORDER BY id"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(ActiveAlarm {
                row: alarm_row(r)?,
                alarm_key: r.get(18)?,
                rule_id: r.get(19)?,
                notified_ms: r.get(20)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One alarm by id.
    pub fn alarm(&self, id: i64) -> Result<Option<AlarmRow>, HistoryError> {
        let c = self.read_conn();
        let mut st =
            c.prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1"))?;
        Ok(st.query_row(params![id], alarm_row).optional()?)
    }

    /// Marks an alarm acknowledged. `Ok(false)`: no such alarm.
    pub fn acknowledge(&self, alarm_id: i64, by: &str, at_ms: i64) -> Result<bool, HistoryError> {
        self.acknowledge_as(alarm_id, by, "", None, at_ms)
    }

    /// Marks an alarm acknowledged through `by` (popup, window) by `user`, with an optional
    /// comment. The first acknowledgement stays on the alarm; every one is kept in
    /// `acknowledgements`. `Ok(false)`: no such alarm.
    pub fn acknowledge_as(
        &self,
        alarm_id: i64,
        by: &str,
        user: &str,
        comment: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, HistoryError> {
        self.acknowledge_shared(alarm_id, by, user, comment, at_ms, &[])
    }

    /// [`History::acknowledge_as`] that also writes team outbox rows (kind, tail, retain,
    /// body) in the same transaction (issue 26).
    pub fn acknowledge_shared(
        &self,
        alarm_id: i64,
        by: &str,
        user: &str,
        comment: Option<&str>,
        at_ms: i64,
        outbox: &[(&str, &str, bool, Option<&str>)],
    ) -> Result<bool, HistoryError> {
        let user = (!user.is_empty()).then_some(user);
        self.write(|w| {
            let n = w.tx.execute(
                "UPDATE alarms SET acknowledged_user = CASE WHEN acknowledged_ms IS NULL THEN ?4 ELSE acknowledged_user END, \
                 acknowledged_comment = CASE WHEN acknowledged_ms IS NULL THEN ?5 ELSE acknowledged_comment END, \
                 acknowledged_ms = coalesce(acknowledged_ms, ?2), \
                 acknowledged_by = coalesce(acknowledged_by, ?3) WHERE id = ?1",
                params![alarm_id, at_ms, by, user, comment],
            )?;
            if n > 0 {
                w.tx.execute(
                    "INSERT INTO acknowledgements (alarm_id, at_ms, by, user, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![alarm_id, at_ms, by, user, comment],
                )?;
                for (kind, tail, retain, body) in outbox {
                    w.outbox_push(kind, tail, *retain, *body, at_ms)?;
                }
            }
            Ok(n > 0)
        })
    }

    /// Outbox rows with an id above `after`, oldest first (issue 26).
    pub fn outbox_pending(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT id, kind, tail, retain, body, at_ms FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, limit as i64], |r| {
            Ok(OutboxEntry {
                id: r.get(0)?,
                kind: r.get(1)?,
                tail: r.get(2)?,
                retain: r.get(3)?,
                body: r.get(4)?,
                at_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The broker acknowledged an outbox row (issue 26).
    pub fn outbox_done(&self, id: i64) -> Result<(), HistoryError> {
        self.write(|w| {
            w.tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
            Ok(())
        })
    }

    /// Records that the user was told about these alarms (popup shown or held back), so a
    /// restart does not pop them again.
    pub fn mark_notified(&self, ids: &[i64], at_ms: i64) -> Result<(), HistoryError> {
        // Not worth an fsync: lost in a power cut, the alarm pops once more at start.
        self.write_relaxed(|w| {
            let mut st =
                w.tx.prepare_cached("UPDATE alarms SET notified_ms = ?2 WHERE id = ?1")?;
            for id in ids {
                st.execute(params![id, at_ms])?;
            }
            Ok(())
        })
    }

    /// Snoozes not ended yet (issue 21), oldest first.
    pub fn snoozes(&self) -> Result<Vec<Snooze>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT sensor, name, at_ms, until_ms, reason, user FROM snoozes \
             WHERE ended_ms IS NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Snooze {
                sensor: r.get(0)?,
                name: r.get(1)?,
                at_ms: r.get(2)?,
                until_ms: r.get(3)?,
                reason: r.get(4)?,
                user: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a snooze; one of the same sensor still running ends now (replaced).
    pub fn snooze(&self, s: &Snooze) -> Result<(), HistoryError> {
        self.write(|w| {
            w.tx.execute(
                "UPDATE snoozes SET ended_ms = ?2 WHERE sensor = ?1 AND ended_ms IS NULL",
                params![s.sensor, s.at_ms],
            )?;
            w.tx.execute(
                "INSERT INTO snoozes (sensor, name, at_ms, until_ms, reason, user) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.sensor, s.name, s.at_ms, s.until_ms, s.reason, s.user],
            )?;
            Ok(())
        })
    }

    /// Ends the sensor's snooze (expired or ended early). `Ok(false)`: none was running.
    pub fn end_snooze(&self, sensor: &str, at_ms: i64) -> Result<bool, HistoryError> {
        self.write(|w| {
            Ok(w.tx.execute(
                "UPDATE snoozes SET ended_ms = ?2 WHERE sensor = ?1 AND ended_ms IS NULL",
                params![sensor, at_ms],
            )? > 0)
        })
    }

    /// (sensor, quantity or "") of every reading in `[from_ms, to_ms)`, sorted: the rows of
    /// the shift report (issue 21).
    pub fn report_channels(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String)>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT DISTINCT sensor, coalesce(quantity, '') FROM events WHERE sensor IS NOT NULL \
             AND at_ms >= ?1 AND at_ms < ?2 AND value IS NOT NULL AND kind IN ('measurement', 'reading') \
             ORDER BY 1, 2",
        )?;
        let rows = st.query_map(params![from_ms, to_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every reading of a sensor's quantity ("" = none) in `[from_ms, to_ms)`, oldest first,
    /// with no cap: the report computes its figures from all of them.
    pub fn range_series(
        &self,
        sensor: &str,
        quantity: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT at_ms, value FROM events WHERE sensor = ?1 AND coalesce(quantity, '') = ?2 \
             AND at_ms >= ?3 AND at_ms < ?4 AND value IS NOT NULL AND kind IN ('measurement', 'reading') \
             ORDER BY at_ms",
        )?;
        let rows = st.query_map(params![sensor, quantity, from_ms, to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every alarm that overlaps `[from_ms, to_ms]`, oldest first (shift report).
    pub fn alarms_in_range(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AlarmRow>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(&format!(
            "SELECT {ALARM_COLUMNS} FROM alarms WHERE raised_ms <= ?2 \
             AND (cleared_ms IS NULL OR cleared_ms >= ?1) ORDER BY raised_ms, id"
        ))?;
        let rows = st.query_map(params![from_ms, to_ms], alarm_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records where an escalation of `alarm_id` to `webhook` stands (issue 21): `state` is
    /// "sending", "sent", "failed" (gave up) or "cancelled" (acknowledged or cleared first).
    pub fn record_escalation(
        &self,
        alarm_id: i64,
        webhook: &str,
        state: &str,
        attempts: u32,
        last_error: Option<&str>,
        at_ms: i64,
    ) -> Result<(), HistoryError> {
        self.write(|w| {
            w.tx.execute(
                "INSERT INTO escalations (alarm_id, webhook, state, attempts, last_error, started_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (alarm_id, webhook) DO UPDATE SET \
                 state = ?3, attempts = ?4, last_error = coalesce(?5, last_error), updated_ms = ?6",
                params![alarm_id, webhook, state, attempts, last_error, at_ms],
            )?;
            Ok(())
        })
    }

    /// The escalations of one alarm, oldest first.
    pub fn escalations(&self, alarm_id: i64) -> Result<Vec<EscalationRow>, HistoryError> {
        let c = self.read_conn();
        let mut st = c.prepare_cached(
            "SELECT webhook, state, attempts, last_error, started_ms, updated_ms \
             FROM escalations WHERE alarm_id = ?1 ORDER BY started_ms, webhook",
        )?;
        let rows = st.query_map(params![alarm_id], |r| {
            Ok(EscalationRow {
                alarm_id,
                webhook: r.get(0)?,
                state: r.get(1)?,
                attempts: r.get(2)?,
                last_error: r.get(3)?,
                started_ms: r.get(4)?,
                updated_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Active alarms that were escalated already (a restart must not send them again).
    pub fn escalated_active(&self) -> Result<Vec<i64>, HistoryError> {
        let c = lock(&self.inner.write);
        let mut st = c.prepare_cached(
            "SELECT DISTINCT e.alarm_id FROM escalations e JOIN alarms a ON a.id = e.alarm_id \
             WHERE a.cleared_ms IS NULL",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes every write fail (as on a full disk or a read-only directory) or work again.
    #[doc(hidden)]
    pub fn break_writes_for_test(&self, broken: bool) {
        let sql = if broken {
            "PRAGMA query_only = ON"
        } else {
            "PRAGMA query_only = OFF"
        };
        let _ = lock(&self.inner.write).execute_batch(sql);
    }

    /// Write transactions committed since open (diagnostics, the bench).
    pub fn commits(&self) -> u64 {
        (self.inner.commits).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of stored events (tests, diagnostics).
    pub fn event_count(&self) -> Result<i64, HistoryError> {
        Ok(self
            .read_conn()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
    }
}

/// Past this size the write-ahead log is restarted (see [`checkpoint`]): PASSIVE checkpoints
/// never reset a log that a writer appends to without pause (2 GB after a long burst).
const WAL_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// An idle log file larger than this is emptied; a smaller one is left for the next writes
/// (emptying it after every quiet second would cost a sync per message at low rates).
const SHRINK_ABOVE_BYTES: u64 = 4 * 1024 * 1024;

/// Copies the WAL into the database every second (PASSIVE: never blocks the writer) until
/// the history is dropped.
fn spawn_checkpointer(c: Connection, alive: std::sync::Weak<Inner>) {
    let run = move || {
        let mut failing = false;
        let mut seen = Seen::default();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let Some(inner) = alive.upgrade() else {
                break;
            };
            match checkpoint(&c, WAL_LIMIT_BYTES, &mut seen) {
                Ok(restart_due) => {
                    failing = false;
                    if restart_due {
                        inner
                            .restart_wal
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("history checkpoint failed: {e}");
                    }
                    failing = true;
                }
            }
        }
        // The last connection to close checkpoints and removes the WAL.
        drop(c);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("history-checkpoint".into())
        .spawn(run)
    {
        tracing::warn!("no checkpoint thread ({e}); the write-ahead log grows until restart");
    }
}

/// What the checkpointer saw last time: the log's length in frames.
#[derive(Debug, Default)]
struct Seen {
    log_frames: i64,
}

/// One checkpoint, every second:
/// - PASSIVE: copies what it can without ever blocking the writer;
/// - past `limit` bytes of log, RESTART: waits for the writer's current batch, copies the
///   rest and makes the next write start the log from its beginning (measured 7–15 ms).
///   Under a continuous stream of writes a passive checkpoint never catches up, and the
///   log would grow without bound (2 GB in the 1,000,000-event load). When the writer
///   never leaves a gap the RESTART comes back busy: the answer is then `true`, and the
///   writer restarts the log itself after its next commit. The file is not shrunk here:
///   shrinking in the middle of a burst held the writer for 50–200 ms;
/// - once nothing was written for a whole second, everything is copied and the file is
///   over [`SHRINK_ABOVE_BYTES`], TRUNCATE: it goes back to zero bytes while no one writes.
fn checkpoint(c: &Connection, limit: i64, seen: &mut Seen) -> rusqlite::Result<bool> {
    let (log_frames, copied): (i64, i64) =
        c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })?;
    let page_size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let idle = log_frames == seen.log_frames && copied == log_frames;
    seen.log_frames = log_frames;
    let mode = if log_frames.saturating_mul(page_size) > limit {
        "RESTART"
    } else if idle && wal_file_len(c) > SHRINK_ABOVE_BYTES {
        "TRUNCATE"
    } else {
        return Ok(false);
    };
    let busy: i64 = c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))?;
    if busy != 0 {
        tracing::debug!(mode, "history checkpoint postponed: the database was busy");
        return Ok(mode == "RESTART");
    }
    seen.log_frames = 0;
    Ok(false)
}

/// The size of the connection's write-ahead log file (0 if there is none).
fn wal_file_len(c: &Connection) -> u64 {
    c.path()
        .and_then(|p| std::fs::metadata(format!("{p}-wal")).ok())
        .map_or(0, |m| m.len())
}

/// The columns [`alarm_row`] reads, in its order: the row, then its severity steps as
/// `at_ms:severity,…` (group_concat; no JSON functions needed).
const ALARM_COLUMNS: &str = "id, source, account, device, sensor, name, condition, severity, value, unit, limit_text, \
     raised_ms, cleared_ms, acknowledged_ms, acknowledged_by, \
     (SELECT group_concat(s.at_ms || ':' || s.severity, ',') FROM alarm_steps s WHERE s.alarm_id = alarms.id), \
     acknowledged_user, acknowledged_comment";

/// `at_ms:severity,…` → steps, oldest first (a malformed part is skipped).
fn parse_steps(text: Option<String>) -> Vec<SeverityStep> {
    let mut steps: Vec<SeverityStep> = text
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|part| {
            let (at, sev) = part.split_once(':')?;
            Some(SeverityStep {
                at_ms: at.parse().ok()?,
                severity: parse_severity(sev),
            })
        })
        .collect();
    // Stable: steps of one millisecond keep the order they were written in.
    steps.sort_by_key(|s| s.at_ms);
    steps
}

fn alarm_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRow> {
    let sev: String = r.get(7)?;
    Ok(AlarmRow {
        id: r.get(0)?,
        source: source_at(r, 1)?,
        account: r.get(2)?,
        device: r.get(3)?,
        sensor: r.get(4)?,
        name: r.get(5)?,
        condition: r.get(6)?,
        severity: parse_severity(&sev),
        value: r.get(8)?,
        unit: r.get(9)?,
        limit: r.get(10)?,
        raised_ms: r.get(11)?,
        cleared_ms: r.get(12)?,
        acknowledged_ms: r.get(13)?,
        acknowledged_by: r.get(14)?,
        steps: parse_steps(r.get(15)?),
        acknowledged_user: r.get(16)?,
        acknowledged_comment: r.get(17)?,
    })
}

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (key, source, account, subscription, kind, device, \
     sensor, name, quantity, value, unit, fields, alarm_key, condition, severity, measured_ms, received_ms, at_ms, \
     replayed, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";

/// Writes inside one transaction (see [`History::write`]).
pub struct Writer<'a> {
    tx: &'a Transaction<'a>,
    /// The event insert, prepared once per transaction: the statement cache hashes and
    /// compares the whole SQL text on every lookup, which showed in profiles.
    insert: Option<rusqlite::CachedStatement<'a>>,
}

impl<'a> Writer<'a> {
    /// The open transaction, for statements kept beside their feature (issue 20's names).
    pub(crate) fn tx(&self) -> &Transaction<'a> {
        self.tx
    }

    /// Stores an event. `Ok(None)`: an event with the same key was stored before.
    pub fn insert_event(&mut self, e: &Event) -> Result<Option<i64>, HistoryError> {
        if self.insert.is_none() {
            let tx: &'a Transaction<'a> = self.tx;
            self.insert = Some(tx.prepare_cached(INSERT_EVENT)?);
        }
        let Some(st) = self.insert.as_mut() else {
            return Err(HistoryError::Sql(rusqlite::Error::InvalidQuery));
        };
        let fields = if e.fields.is_empty() {
            None
        } else {
            serde_json::to_string(&e.fields).ok()
        };
        let measured = e.measured_at.map(ms);
        let received = ms(e.received_at);
        let value = e.value.filter(|v| v.is_finite());
        let n = st.execute(params![
            e.key,
            e.source.as_str(),
            e.account,
            e.subscription,
            e.kind.as_str(),
            e.device,
            e.sensor,
            e.name,
            e.quantity,
            value,
            e.unit,
            fields,
            e.alarm_id,
            e.condition,
            e.severity.as_str(),
            measured,
            received,
            measured.unwrap_or(received),
            e.replayed,
            e.raw,
        ])?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.tx.last_insert_rowid()))
    }

    /// Adds a row to the team outbox in this transaction (issue 26).
    pub fn outbox_push(
        &mut self,
        kind: &str,
        tail: &str,
        retain: bool,
        body: Option<&str>,
        at_ms: i64,
    ) -> Result<(), HistoryError> {
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (kind, tail, retain, body, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![kind, tail, retain, body, at_ms])?;
        Ok(())
    }

    pub fn set_cursor(
        &mut self,
        source: Source,
        account: &str,
        subscription: &str,
        cursor: &str,
        at_ms: i64,
    ) -> Result<(), HistoryError> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO cursors (source, account, subscription, cursor, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (source, account, subscription) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms",
        )?;
        st.execute(params![
            source.as_str(),
            account,
            subscription,
            cursor,
            at_ms
        ])?;
        Ok(())
    }

    /// Keeps the newest value per (sensor, quantity): an older value (a replay) never
    /// overwrites a newer one.
    pub fn set_last_value(&mut self, v: &LatestValue) -> Result<(), HistoryError> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO last_values (sensor, quantity, name, source, value, unit, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (sensor, quantity) DO UPDATE SET name = coalesce(excluded.name, name), source = excluded.source, \
             value = excluded.value, unit = excluded.unit, at_ms = excluded.at_ms WHERE excluded.at_ms >= at_ms",
        )?;
        st.execute(params![
            v.sensor,
            v.quantity.as_deref().unwrap_or(""),
            v.name,
            v.source.as_str(),
            v.value,
            v.unit,
            v.at_ms
        ])?;
        Ok(())
    }

    pub fn raise_alarm(&mut self, a: &NewAlarm) -> Result<i64, HistoryError> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO alarms (alarm_key, source, account, device, sensor, name, condition, severity, value, unit, \
             limit_text, rule_id, event_id, raised_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        st.execute(params![
            a.alarm_key,
            a.source.as_str(),
            a.account,
            a.device,
            a.sensor,
            a.name,
            a.condition,
            a.severity.as_str(),
            a.value.filter(|v| v.is_finite()),
            a.unit,
            a.limit,
            a.rule_id,
            a.event_id,
            a.raised_ms
        ])?;
        let id = self.tx.last_insert_rowid();
        self.add_step(id, a.raised_ms, a.severity, a.event_id)?;
        Ok(id)
    }

    fn add_step(
        &mut self,
        alarm_id: i64,
        at_ms: i64,
        severity: Severity,
        event_id: Option<i64>,
    ) -> Result<(), HistoryError> {
        let mut st = self.tx.prepare_cached(
            "INSERT INTO alarm_steps (alarm_id, at_ms, severity, event_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        st.execute(params![alarm_id, at_ms, severity.as_str(), event_id])?;
        Ok(())
    }

    /// An active alarm's severity changed upstream (Warning → Alarm or back): the row takes
    /// the new severity and value, and a step records when. `reopen` clears the
    /// acknowledgement (it was given to the milder state; the acknowledgements table
    /// keeps it).
    pub fn change_severity(
        &mut self,
        id: i64,
        severity: Severity,
        value: Option<f64>,
        at_ms: i64,
        event_id: Option<i64>,
        reopen: bool,
    ) -> Result<(), HistoryError> {
        let mut st = self.tx.prepare_cached(
            "UPDATE alarms SET severity = ?2, value = coalesce(?3, value), \
             acknowledged_ms = CASE WHEN ?4 THEN NULL ELSE acknowledged_ms END, \
             acknowledged_by = CASE WHEN ?4 THEN NULL ELSE acknowledged_by END, \
             acknowledged_user = CASE WHEN ?4 THEN NULL ELSE acknowledged_user END, \
             acknowledged_comment = CASE WHEN ?4 THEN NULL ELSE acknowledged_comment END WHERE id = ?1",
        )?;
        st.execute(params![
            id,
            severity.as_str(),
            value.filter(|v| v.is_finite()),
            reopen
        ])?;
        self.add_step(id, at_ms, severity, event_id)
    }

    /// A new value for an alarm that is still active (raised again upstream).
    pub fn update_alarm_value(&mut self, id: i64, value: Option<f64>) -> Result<(), HistoryError> {
        let mut st = self
            .tx
            .prepare_cached("UPDATE alarms SET value = coalesce(?2, value) WHERE id = ?1")?;
        st.execute(params![id, value.filter(|v| v.is_finite())])?;
        Ok(())
    }

    pub fn clear_alarm(&mut self, id: i64, at_ms: i64) -> Result<(), HistoryError> {
        let mut st = self.tx.prepare_cached(
            "UPDATE alarms SET cleared_ms = ?2 WHERE id = ?1 AND cleared_ms IS NULL",
        )?;
        st.execute(params![id, at_ms])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn ev(key: &str, sensor: &str, v: f64, at_ms: i64) -> Event {
        let mut e = Event::new(
            Source::Saveris,
            "a1",
            "measurements",
            EventKind::Measurement,
            key.into(),
        );
        e.sensor = Some(sensor.into());
        e.quantity = Some("Temperature".into());
        e.value = Some(v);
        e.unit = Some("°C".into());
        e.measured_at = Some(jiff::Timestamp::from_millisecond(at_ms).unwrap());
        e
    }

    #[test]
    fn a_range_of_readings_is_read_from_the_index_alone() {
        // The sensor view's 30 days must not read each event's row (raw body and all).
        let h = History::open_in_memory().unwrap();
        let plan: Vec<String> = h
            .with_read(|c| {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {SERIES_BETWEEN}"))?;
                let rows = st.query_map(params!["s", 0, 1, 1], |r| r.get::<_, String>(3))?;
                rows.collect()
            })
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("COVERING INDEX events_sensor_at_value")),
            "{plan:?}"
        );
    }

    #[test]
    fn an_outbox_id_is_never_given_twice_so_the_publisher_never_skips_a_row() {
        // The publisher reads rows after the highest id it sent. Rows 1-3 sent and deleted
        // (PUBACK): the next row must be 4, not 1 again (the team test lost 3 alarms so).
        let h = History::open_in_memory().unwrap();
        let push = |n: usize| {
            h.write(|w| {
                for _ in 0..n {
                    w.outbox_push("event", "pc-a", false, Some("{}"), 1)?;
                }
                Ok(())
            })
            .unwrap()
        };
        push(3);
        let sent = h.outbox_pending(0, 10).unwrap();
        assert_eq!(sent.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
        for r in &sent {
            h.outbox_done(r.id).unwrap();
        }
        push(2);
        let next: Vec<i64> = h
            .outbox_pending(3, 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(next, [4, 5]);
    }

    #[test]
    fn an_outbox_of_the_first_team_builds_is_rebuilt_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, tail TEXT NOT NULL,
                     retain INTEGER NOT NULL, body TEXT, at_ms INTEGER NOT NULL);
                 INSERT INTO outbox VALUES (7, 'event', 'pc-a', 0, '{\"a\":1}', 5);
                 INSERT INTO outbox VALUES (9, 'state', 'x', 1, NULL, 6);",
            )
            .unwrap();
        }
        let h = History::open(&path).unwrap();
        let rows = h.outbox_pending(0, 10).unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [7, 9]);
        assert_eq!(rows[0].body.as_deref(), Some("{\"a\":1}"));
        for r in &rows {
            h.outbox_done(r.id).unwrap();
        }
        h.write(|w| w.outbox_push("event", "pc-a", false, None, 1))
            .unwrap();
        assert_eq!(h.outbox_pending(0, 10).unwrap()[0].id, 10);
    }

    #[test]
    fn duplicate_key_is_stored_once() {
        let h = History::open_in_memory().unwrap();
        let ids = h
            .write(|w| {
                let a = w.insert_event(&ev("k1", "s", 1.0, 1000))?;
                let b = w.insert_event(&ev("k1", "s", 1.0, 1000))?;
                Ok((a, b))
            })
            .unwrap();
        assert!(ids.0.is_some());
        assert_eq!(ids.1, None);
        assert_eq!(h.event_count().unwrap(), 1);
    }

    #[test]
    fn series_latest_and_cursors() {
        let h = History::open_in_memory().unwrap();
        h.write(|w| {
            for (i, v) in [1.0, 2.0, 3.0].iter().enumerate() {
                w.insert_event(&ev(&format!("k{i}"), "s1", *v, 1000 * (i as i64 + 1)))?;
            }
            let lv = |v: f64, at: i64| LatestValue {
                sensor: "s1".into(),
                name: None,
                source: Source::Saveris,
                quantity: Some("Temperature".into()),
                value: v,
                unit: None,
                at_ms: at,
            };
            w.set_last_value(&lv(3.0, 3000))?;
            w.set_last_value(&lv(1.0, 1000))?; // an older replayed value must not win
            w.set_cursor(Source::Element, "e1", "sub", "2024-01-01T00:00:00Z", 1)?;
            w.set_cursor(Source::Element, "e1", "sub", "2024-01-02T00:00:00Z", 2)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            h.series("s1", 2000).unwrap(),
            vec![(2000, 2.0), (3000, 3.0)]
        );
        let latest = h.latest_values().unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].value, 3.0);
        let c = h.cursors(Source::Element, "e1").unwrap();
        assert_eq!(
            c.get("sub").map(String::as_str),
            Some("2024-01-02T00:00:00Z")
        );
        assert!(h.cursors(Source::Saveris, "e1").unwrap().is_empty());
    }

    fn alarm(key: &str, sensor: &str, sev: Severity, at: i64) -> NewAlarm {
        NewAlarm {
            alarm_key: key.into(),
            source: Source::Saveris,
            account: "a1".into(),
            device: Some("dev-1".into()),
            sensor: Some(sensor.into()),
            name: Some(format!("Fridge {sensor}")),
            condition: Some("Upper limit".into()),
            severity: sev,
            value: Some(9.0),
            unit: Some("°C".into()),
            limit: None,
            rule_id: None,
            event_id: None,
            raised_ms: at,
        }
    }

    #[test]
    fn alarm_filters() {
        let h = History::open_in_memory().unwrap();
        let (a, _b) = h
            .write(|w| {
                let a = w.raise_alarm(&alarm("x", "s1", Severity::Alarm, 1000))?;
                let b = w.raise_alarm(&alarm("y", "s2", Severity::Warning, 2000))?;
                w.clear_alarm(a, 3000)?;
                Ok((a, b))
            })
            .unwrap();
        let all = h.alarms(&AlarmFilter::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].sensor.as_deref(), Some("s2"), "newest first");
        let active = h
            .alarms(&AlarmFilter {
                state: "active".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].severity, Severity::Warning);
        let cleared = h
            .alarms(&AlarmFilter {
                state: "cleared".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(cleared[0].id, a);
        assert_eq!(cleared[0].cleared_ms, Some(3000));
        let f = AlarmFilter {
            severity: Some(Severity::Alarm),
            device: "FRIDGE S1".into(),
            ..Default::default()
        };
        assert_eq!(h.alarms(&f).unwrap().len(), 1);
        let f = AlarmFilter {
            device: "s%".into(),
            ..Default::default()
        };
        assert!(h.alarms(&f).unwrap().is_empty(), "% is a plain character");
        let f = AlarmFilter {
            from_ms: Some(1500),
            to_ms: Some(2500),
            source: Some(Source::Saveris),
            ..Default::default()
        };
        assert_eq!(h.alarms(&f).unwrap().len(), 1);
        let f = AlarmFilter {
            source: Some(Source::Element),
            ..Default::default()
        };
        assert!(h.alarms(&f).unwrap().is_empty());
        assert!(h.acknowledge(a, "ui", 4000).unwrap());
        assert!(!h.acknowledge(999, "ui", 4000).unwrap());
        assert_eq!(
            h.alarm(a).unwrap().unwrap().acknowledged_by.as_deref(),
            Some("ui")
        );
    }

    #[test]
    fn only_one_active_alarm_per_key() {
        let h = History::open_in_memory().unwrap();
        let r = h.write(|w| {
            w.raise_alarm(&alarm("x", "s1", Severity::Alarm, 1000))?;
            w.raise_alarm(&alarm("x", "s1", Severity::Alarm, 1001))
        });
        assert!(
            r.is_err(),
            "the unique index must refuse a second active alarm of one key"
        );
        assert!(
            h.active_alarms().unwrap().is_empty(),
            "the failed transaction rolled back"
        );
    }

    #[test]
    fn prune_drops_old_rows_only() {
        let h = History::open_in_memory().unwrap();
        h.write(|w| {
            let mut old = ev("old", "s", 1.0, 1000);
            old.received_at = jiff::Timestamp::from_millisecond(1000).unwrap();
            w.insert_event(&old)?;
            let mut new = ev("new", "s", 1.0, 10_000);
            new.received_at = jiff::Timestamp::from_millisecond(10_000).unwrap();
            w.insert_event(&new)?;
            let a = w.raise_alarm(&alarm("x", "s1", Severity::Alarm, 1000))?;
            w.clear_alarm(a, 2000)?;
            w.raise_alarm(&alarm("y", "s1", Severity::Alarm, 1000))?; // active: kept
            Ok(())
        })
        .unwrap();
        assert_eq!(h.prune_before(5000).unwrap(), 2);
        assert_eq!(h.event_count().unwrap(), 1);
        assert_eq!(h.alarms(&AlarmFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let h = History::open(&path).unwrap();
        assert!(h.notice().unwrap().contains("damaged"), "{:?}", h.notice());
        assert_eq!(h.event_count().unwrap(), 0);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("history.sqlite3.broken-")),
            "{names:?}"
        );
    }

    #[test]
    fn file_database_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite3");
        let h = History::open(&path).unwrap();
        assert!(h.notice().is_none());
        h.write(|w| w.insert_event(&ev("k", "s", 2.5, 1000)))
            .unwrap();
        drop(h);
        let h = History::open(&path).unwrap();
        assert_eq!(h.series("s", 0).unwrap(), vec![(1000, 2.5)]);
        let mut u = Event::new(
            Source::Element,
            "e",
            "sub",
            EventKind::Unparsed,
            "u1".into(),
        );
        u.raw = "{not json".into();
        h.write(|w| w.insert_event(&u)).unwrap();
        let rows = h.unparsed(10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].raw, "{not json");
    }

    #[test]
    fn a_wal_past_the_limit_restarts_and_an_idle_one_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.sqlite3");
        let w = Connection::open(&path).unwrap();
        let _: String = w
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        w.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x BLOB);")
            .unwrap();
        let insert = |n: usize| {
            w.execute_batch("BEGIN").unwrap();
            for _ in 0..n {
                w.execute("INSERT INTO t VALUES (randomblob(4000))", [])
                    .unwrap();
            }
            w.execute_batch("COMMIT").unwrap();
        };
        let frames = |c: &Connection| -> i64 {
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                .unwrap()
        };
        insert(1500);
        let wal = dir.path().join("wal.sqlite3-wal");
        let before = std::fs::metadata(&wal).unwrap().len();
        assert!(before > SHRINK_ABOVE_BYTES, "the WAL grew: {before}");
        let c = Connection::open(&path).unwrap();
        let mut seen = Seen::default();

        // Under the limit and just written: copied, the file left as it is.
        checkpoint(&c, i64::MAX, &mut seen).unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), before);
        assert!(seen.log_frames > 1500, "{seen:?}");

        // Past the limit: restarted (the next write starts the log from the beginning),
        // and the file is not shrunk while writes may go on.
        insert(1);
        checkpoint(&c, 0, &mut seen).unwrap();
        assert_eq!(seen.log_frames, 0, "the restart went through");
        insert(1);
        assert!(frames(&c) < 10, "restarted: {} frames", frames(&c));
        assert!(
            std::fs::metadata(&wal).unwrap().len() >= before,
            "not shrunk mid-burst"
        );

        // Nothing written for a tick and everything copied: the file is emptied.
        let mut seen = Seen::default();
        checkpoint(&c, i64::MAX, &mut seen).unwrap();
        checkpoint(&c, i64::MAX, &mut seen).unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1502, "nothing lost");

        // A small idle log is left alone (no sync per quiet second at low rates).
        insert(1);
        checkpoint(&c, i64::MAX, &mut seen).unwrap();
        checkpoint(&c, i64::MAX, &mut seen).unwrap();
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    }

    #[test]
    fn the_writer_restarts_the_log_when_the_checkpointer_could_not() {
        // Two databases written alike, one with a restart due. Nothing else checkpoints in
        // between (the checkpointer's first turn is a second away).
        let frames_after = |restart_due: bool| -> i64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("history.sqlite3");
            let h = History::open(&path).unwrap();
            let write = |from: usize, n: usize| {
                h.write(|w| {
                    for i in from..from + n {
                        w.insert_event(&ev(&format!("k{i}"), "s1", i as f64, i as i64))?;
                    }
                    Ok(())
                })
                .unwrap();
            };
            write(0, 300);
            h.inner
                .restart_wal
                .store(restart_due, std::sync::atomic::Ordering::Relaxed);
            write(300, 1);
            assert!(!h
                .inner
                .restart_wal
                .load(std::sync::atomic::Ordering::Relaxed));
            write(301, 1);
            assert_eq!(h.event_count().unwrap(), 302);
            let c = Connection::open(&path).unwrap();
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                .unwrap()
        };
        let grown = frames_after(false);
        let restarted = frames_after(true);
        assert!(
            restarted < 10 && grown > 20,
            "log frames: {grown} without the restart, {restarted} with it"
        );
    }
}
