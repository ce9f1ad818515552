//! Loopback servers that behave like Saveris and ELEMENT (demo mode, tests).
pub mod dataapi;
pub mod demo;
pub mod element;
pub mod saveris;
pub mod scenario;
