//! The monitor ↔ window protocol over a local socket only the user can open
//! (a Unix socket of mode 0600 in `$XDG_RUNTIME_DIR`; a named pipe on Windows, through
//! `interprocess`). Used by nothing else.

pub mod client;
pub mod protocol;
pub mod server;

use std::path::Path;

use interprocess::local_socket::Name;

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("Alarm Tray is not running (no monitor answers on {0})")]
    NotRunning(String),
    #[error("the connection to the Alarm Tray monitor failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the Alarm Tray monitor speaks protocol {theirs}, this window {ours}: restart Alarm Tray"
    )]
    Version { ours: u32, theirs: u32 },
    #[error("the Alarm Tray monitor sent something unexpected: {0}")]
    Protocol(String),
    #[error("the Alarm Tray monitor did not answer in time")]
    Timeout,
    #[error("{0}")]
    Remote(String),
}

/// The platform name of the socket at `path`.
pub fn socket_name(path: &Path) -> std::io::Result<Name<'static>> {
    #[cfg(windows)]
    {
        // Named pipes live in their own namespace: derive a pipe name from the path.
        use interprocess::local_socket::{GenericNamespaced, ToNsName};
        let tag = path.to_string_lossy().replace(['\\', '/', ':'], "-");
        tag.to_ns_name::<GenericNamespaced>()
            .map(|n| n.into_owned())
    }
    #[cfg(not(windows))]
    {
        use interprocess::local_socket::{GenericFilePath, ToFsName};
        path.to_path_buf()
            .to_fs_name::<GenericFilePath>()
            .map(|n| n.into_owned())
    }
}
