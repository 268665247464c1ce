//! The control channel between the CLI and a running mount: a private Unix socket per
//! mountpoint (`socket`), a versioned line protocol (`proto`), the mount's server (`server`,
//! answering from a [`MountView`]) and the CLI's client (`client`).

pub mod client;
mod pin_server;
pub mod proto;
pub mod server;
pub mod socket;
pub mod view;

pub use client::{ControlClient, ControlError, Located, locate};
pub use server::{ControlServer, UnmountRequest};
pub use view::{Connectivity, MountView};

#[cfg(test)]
mod tests;
