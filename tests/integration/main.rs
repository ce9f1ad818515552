//! The one integration test binary: real peers on loopback and the real app.

mod dataapi;
mod demo;
mod desktop;
mod e2e;
mod element;
mod engine;
mod faults;
mod keyring;
mod monitor;
mod peers;
mod saveris;
mod soak;
mod team;
mod wayland;
mod windows;
