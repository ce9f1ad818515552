//! Starting our own binary again: the window process from the monitor, the monitor from a
//! window that found none.

use std::path::PathBuf;
use std::process::{Child, Command};

/// The running binary. After a package upgrade replaced the file, `current_exe()` names a
/// deleted path while `/proc/self/exe` still starts the running version.
pub fn self_exe() -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        PathBuf::from("/proc/self/exe")
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("alarm-tray"))
    }
}

/// Set by the monitor when it disabled GL for itself only (`GDK_GL=disable`).
pub const GL_MARKER: &str = "ALARM_TRAY_MONITOR_SET_GDK_GL";

/// Spawns `alarm-tray <args>` as a child that dies with its parent (the window must not
/// outlive a killed monitor).
pub fn spawn_child(args: &[String]) -> std::io::Result<Child> {
    let mut cmd = Command::new(self_exe());
    cmd.args(args);
    if std::env::var_os(GL_MARKER).is_some() {
        // The webview renders with GL as the user's desktop allows.
        cmd.env_remove("GDK_GL").env_remove(GL_MARKER);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // Started through /proc/self/exe: give `ps` and the desktop a readable name.
        cmd.arg0("alarm-tray");
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Spawns `alarm-tray <args>` detached in its own session (the monitor started from a
/// window must outlive it). Reaped by a thread so it never lingers as a zombie of ours.
pub fn spawn_detached(args: &[String]) -> std::io::Result<()> {
    let mut cmd = Command::new(self_exe());
    cmd.args(args).stdin(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.arg0("alarm-tray");
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}
