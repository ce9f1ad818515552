//! Giving memory back once start-up is over.
//!
//! The monitor lives in the tray all day, but most of what it holds after start-up is pages
//! of its program and of the libraries Tauri links (GTK, WebKitGTK and its speech-synthesis
//! voices, ICU) that only initialisation touched, mapped in 64 KB batches by the kernel's
//! fault-around. Measured on the release build, alone on an Xvfb display: 74.5 MB PSS of
//! which 62.5 MB were clean file pages; after paging those out the process settled at
//! 31 MB PSS (docs/BENCH.md). So, after start-up and after the window process exits:
//! - read-only file mappings get `MADV_PAGEOUT`: the kernel drops the pages only this
//!   process maps (pages shared with other processes stay) and reads back what is used
//!   again — the working set of an idle monitor;
//! - `malloc_trim` returns freed heap to the system.
//!
//! Nothing here changes behaviour: a page that is needed again is faulted back in. Set
//! `ALARM_TRAY_NO_TRIM=1` to measure without it.

use std::time::Duration;

/// How long after start-up the first trim runs: the tray is up and the feeds connected.
pub const AFTER_START: Duration = Duration::from_secs(20);
/// How long after the window process exits the monitor trims.
pub const AFTER_WINDOW: Duration = Duration::from_secs(3);

/// Trims now, unless `ALARM_TRAY_NO_TRIM` is set. Returns the resident set before and
/// after, in kB, where the platform tells.
pub fn trim() -> Option<(u64, u64)> {
    if std::env::var_os("ALARM_TRAY_NO_TRIM").is_some() {
        return None;
    }
    imp::trim()
}

/// Trims once `delay` has passed, on a thread of its own (the monitor's threads belong to
/// GTK and the feeds).
pub fn trim_after(delay: Duration, why: &'static str) {
    let spawned = std::thread::Builder::new()
        .name("memory-trim".into())
        .spawn(move || {
            std::thread::sleep(delay);
            if let Some((before, after)) = trim() {
                tracing::debug!(why, before_kb = before, after_kb = after, "memory trimmed");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no memory trim");
    }
}

#[cfg(target_os = "linux")]
mod imp {
    pub fn trim() -> Option<(u64, u64)> {
        let before = rss_kb();
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only walks glibc's own arenas; any thread may call it.
        unsafe {
            libc::malloc_trim(0);
        }
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        for (start, len) in read_only_file_mappings(&maps) {
            // SAFETY: MADV_PAGEOUT on a read-only file mapping of our own address space only
            // drops pages the kernel can read back from the file; contents never change.
            // An error (an old kernel without MADV_PAGEOUT) leaves the pages as they were.
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT);
            }
        }
        Some((before?, rss_kb()?))
    }

    /// (start, length) of every mapping of a file that cannot be written (program text,
    /// read-only data). Writable and anonymous mappings are left alone.
    pub fn read_only_file_mappings(maps: &str) -> Vec<(usize, usize)> {
        maps.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let range = parts.next()?;
                let perms = parts.next()?;
                let path = parts.nth(3)?;
                if !path.starts_with('/') || perms.contains('w') {
                    return None;
                }
                let (a, b) = range.split_once('-')?;
                let a = usize::from_str_radix(a, 16).ok()?;
                let b = usize::from_str_radix(b, 16).ok()?;
                (b > a).then_some((a, b - a))
            })
            .collect()
    }

    fn rss_kb() -> Option<u64> {
        std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    /// Windows and macOS trim an idle process's working set themselves.
    pub fn trim() -> Option<(u64, u64)> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::imp::read_only_file_mappings;

    #[test]
    fn only_read_only_file_mappings_are_chosen() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /usr/bin/alarm-tray
55d0c0100000-55d0c0900000 r-xp 00100000 fe:01 123 /usr/bin/alarm-tray
55d0c0900000-55d0c0a00000 rw-p 00900000 fe:01 123 /usr/bin/alarm-tray
55d0c1000000-55d0c2000000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 rw-s 00000000 fe:01 77 /home/u/history.sqlite3-shm
7f0000002000-7f0000003000 r--p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]";
        assert_eq!(
            read_only_file_mappings(maps),
            vec![(0x55d0c0000000, 0x100000), (0x55d0c0100000, 0x800000)]
        );
    }

    #[test]
    fn trimming_lowers_the_resident_set_and_the_code_still_runs() {
        // Touch a good part of this test binary's code first, as a start-up would.
        let text: String = (0..2000).map(|i| format!("{i:x}")).collect();
        let (before, after) = super::imp::trim().expect("Linux reports VmRSS");
        assert!(after < before, "RSS {before} kB → {after} kB");
        // Paged-out code comes back on use.
        assert_eq!(
            text.len(),
            (0..2000).map(|i| format!("{i:x}").len()).sum::<usize>()
        );
    }
}
