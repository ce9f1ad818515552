//! The monitor <-> window protocol over a local socket.
pub mod protocol;
