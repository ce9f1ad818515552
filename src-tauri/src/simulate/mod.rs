//! Loopback servers that behave like Saveris and ELEMENT (demo mode, tests).
pub mod saveris;
