//! The Saveris Data REST API (SAVERIS-API.md §1): the async export client, the token it
//! shares with the push feed, and the task that keeps an account's names, limits and
//! recent history (issue 20).

pub mod client;
pub mod token;

pub use client::{DataApiClient, DataApiError, PollPolicy, ResultFormat, Row};
pub use token::TokenSlot;
pub mod refresh;
