//! The monitor ↔ window protocol over a local socket only the user can open
//! (a Unix socket of mode 0600 in `$XDG_RUNTIME_DIR`; a named pipe on Windows, through
//! `interprocess`). Used by nothing else.

pub mod client;
pub mod error;
pub mod protocol;
pub mod server;

pub use error::Error;

use std::path::Path;

use interprocess::local_socket::Name;

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
