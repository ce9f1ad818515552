//! Single-instance locks: one monitor per user (and profile), one window at a time.
//!
//! An OS file lock is released by the kernel when its holder dies, so a crashed monitor
//! never blocks the next start (unlike a PID file).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Held for the life of the process that owns it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Takes the lock at `path`, or `None` when another process holds it.
pub fn try_lock(path: &Path) -> std::io::Result<Option<InstanceLock>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(InstanceLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Whether some process holds the lock at `path` right now.
pub fn is_held(path: &Path) -> bool {
    matches!(try_lock(path), Ok(None))
}

pub fn monitor_lock() -> PathBuf {
    with_suffix(&crate::paths::socket_path(), ".lock")
}

pub fn window_lock() -> PathBuf {
    with_suffix(&crate::paths::socket_path(), ".window.lock")
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let first = try_lock(&p).unwrap().expect("first lock");
        assert!(try_lock(&p).unwrap().is_none());
        assert!(is_held(&p));
        drop(first);
        assert!(!is_held(&p));
        assert!(try_lock(&p).unwrap().is_some());
    }
}
