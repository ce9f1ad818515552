//! Feeds: one connection each, turning what arrives into [`crate::event::Delivery`]s.
//! They know nothing of rules, notifications or windows.

pub mod backoff;
pub mod element;
pub mod saveris;
