//! The app's core as a child process, for the cases that must kill it (SIGKILL has no
//! destructor, no flush, no ACK) or give it a full disk (a resource limit of its own). The
//! child is this test binary again, running the ignored test [`fault_app_child`].

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alarm_tray::engine::{self, Decision, History, Output};
use alarm_tray::event::Delivery;
use alarm_tray::feeds::saveris::{self, SaverisFeedConfig};
use alarm_tray::notify::{Notifier, NotifyError, Popup};
use alarm_tray::settings::Settings;
use tokio::sync::mpsc;

use crate::peers::spawn_child;
use crate::saveris::{fast, rabbit_account};

/// A notifier that prints each popup's tag as a line (the parent counts them).
struct LineNotifier;

impl Notifier for LineNotifier {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "POPUP {}", popup.tag);
        let _ = out.flush();
        Ok(())
    }
    fn close(&self, _tag: &str) {}
}

/// The app's core as a child process: the history file, the engine and a Saveris feed,
/// wired as `runtime.rs` does (the passcode handed in instead of read from the keyring).
/// Prints `PID <pid>`, `READY`, `STORED <n>` every 100 ms, `REDELIVERED <key>`, `POPUP <tag>`,
/// `STORAGE_FAILED <events>` and `STATUS <json>` lines. While the file named by
/// `FAULT_CHILD_FAIL_FLAG` exists, every write to the history fails.
#[test]
#[ignore = "run as a child process by the SIGKILL and disk-full cases"]
fn fault_app_child() {
    let Ok(db) = std::env::var("FAULT_CHILD_DB") else {
        return;
    };
    let ws = std::env::var("FAULT_CHILD_WS").unwrap();
    let user = std::env::var("FAULT_CHILD_USER").unwrap();
    let fail_flag = std::env::var_os("FAULT_CHILD_FAIL_FLAG").map(std::path::PathBuf::from);
    println!("PID {}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let history = match History::open(Path::new(&db)) {
            Ok(h) => h,
            Err(e) => {
                println!("OPEN_FAILED {e}");
                return;
            }
        };
        if let Some(n) = history.notice() {
            println!("NOTICE {n}");
        }
        let (etx, erx) = mpsc::channel(4096);
        let (stx, srx) = mpsc::unbounded_channel();
        let engine = engine::spawn(
            Settings::default(),
            history.clone(),
            Arc::new(LineNotifier),
            erx,
            srx,
        );
        let mut out = engine.subscribe();
        tokio::spawn(async move {
            loop {
                match out.recv().await {
                    Ok(Output::Decision {
                        decision: Decision::StorageFailed { events, .. },
                    }) => println!("STORAGE_FAILED {events}"),
                    Ok(Output::Status { status }) => {
                        println!("STATUS {}", serde_json::to_string(&status).unwrap())
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        });
        let (dtx, mut drx) = mpsc::channel::<Delivery>(4096);
        tokio::spawn(async move {
            while let Some(d) = drx.recv().await {
                if d.event.redelivered {
                    println!("REDELIVERED {}", d.event.key);
                }
                if etx.send(d).await.is_err() {
                    break;
                }
            }
        });
        let account = rabbit_account(&ws, &user);
        let _feed = saveris::spawn(
            fast(SaverisFeedConfig::new(account, None, Some("guest".into()))),
            dtx,
            stx,
        );
        println!("READY");
        let mut failing = false;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(flag) = &fail_flag {
                if flag.exists() != failing {
                    failing = !failing;
                    history.break_writes_for_test(failing);
                }
            }
            println!("STORED {}", history.event_count().unwrap_or(-1));
        }
    });
}

/// How to start the child.
#[derive(Default)]
pub struct ChildOptions {
    /// RLIMIT_FSIZE (soft; the hard limit stays open so [`AppChild::give_room`] can lift it).
    pub file_size_limit: Option<u64>,
    /// While this file exists, the child's history writes fail.
    pub fail_flag: Option<std::path::PathBuf>,
    /// Run the child under `strace`, writing the trace to this file.
    pub strace_to: Option<std::path::PathBuf>,
}

/// A running [`fault_app_child`] and the lines it printed.
pub struct AppChild {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl AppChild {
    /// `file_size_limit`: RLIMIT_FSIZE for the child (a full disk for its files); SIGXFSZ
    /// is ignored so an oversized write fails with EFBIG instead of killing it.
    pub fn start(db: &Path, ws: &str, user: &str, file_size_limit: Option<u64>) -> AppChild {
        Self::start_with(
            db,
            ws,
            user,
            ChildOptions {
                file_size_limit,
                ..Default::default()
            },
        )
    }

    /// [`AppChild::start`] with the options of the durability cases.
    pub fn start_with(db: &Path, ws: &str, user: &str, opts: ChildOptions) -> AppChild {
        let file_size_limit = opts.file_size_limit;
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match &opts.strace_to {
            Some(out) => {
                // -yy names each descriptor (file path, TCP ends), so the order of log
                // writes, log syncs and socket writes can be read back.
                let mut c = Command::new("/usr/bin/strace");
                c.args(["-f", "-yy", "-s", "64", "-e"])
                    .arg("trace=fsync,fdatasync,pwrite64,pwritev,write,writev,sendto,sendmsg,recvfrom")
                    .arg("-o")
                    .arg(out)
                    .arg("--")
                    .arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        if let Some(flag) = &opts.fail_flag {
            cmd.env("FAULT_CHILD_FAIL_FLAG", flag);
        }
        cmd.args([
            "faults::app_child::fault_app_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FAULT_CHILD_DB", db)
        .env("FAULT_CHILD_WS", ws)
        .env("FAULT_CHILD_USER", user)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(limit) = file_size_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit and signal are async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    // The hard limit stays open, so the test can give room back later.
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = spawn_child(cmd).unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Default::default();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        AppChild { child, lines }
    }

    /// Waits (up to a minute) until the child's engine is up and said READY.
    pub async fn wait_ready(&self) {
        super::harness::wait_for("child ready", Duration::from_secs(60), || {
            !self.lines_with("READY").is_empty()
        })
        .await;
    }

    pub fn lines_with(&self, prefix: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.find(prefix).map(|i| l[i + prefix.len()..].to_owned()))
            .collect()
    }

    pub fn stored(&self) -> i64 {
        self.lines_with("STORED ")
            .last()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1)
    }

    pub fn popups(&self) -> Vec<String> {
        self.lines_with("POPUP ")
    }

    /// The app's own process id (under strace the child is strace).
    pub fn app_pid(&self) -> Option<i32> {
        self.lines_with("PID ").first()?.trim().parse().ok()
    }

    /// Lifts the app's file size limit: the disk has room again.
    pub fn give_room(&self) {
        let pid = self.app_pid().expect("the app printed its pid");
        let lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: plain system call on another process's limits; no memory is shared.
        let r = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL by PID: no destructor, no flush, no ACK. Under strace the app is killed by its
    /// own PID first (strace then exits).
    pub fn kill(&mut self) {
        if let (Some(pid), Ok(None)) = (self.app_pid(), self.child.try_wait()) {
            // SAFETY: a signal to the app's process id, which it printed itself.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AppChild {
    fn drop(&mut self) {
        self.kill();
    }
}
