//! # libmulticast
//!
//! UDP multicast group messaging: join a group, send to it, receive from it with a
//! timeout, close. It is the native form of scriptling's `scriptling.net.multicast`
//! module, shipped as a C library (`libmulticast.so`, `libmulticast.a`,
//! `include/multicast.h`) and usable directly from Rust:
//!
//! ```no_run
//! use multicast::{Group, Timeout};
//! use std::time::Duration;
//!
//! let group = Group::join("239.1.1.1", 9999, "")?;
//! group.send(b"Hello group!")?;
//! if let Some(msg) = group.receive_message(Timeout::After(Duration::from_secs(5)))? {
//!     println!("From {}: {}", msg.source, String::from_utf8_lossy(&msg.data));
//! }
//! group.close()?;
//! # Ok::<(), multicast::Error>(())
//! ```
//!
//! The core (`address`, `interface`, `options`, `message`, `group`, `error`, `upkeep`) is
//! safe Rust; the only `unsafe` outside the C boundary (`ffi`) is the small `sys` shim
//! over libc calls that socket2 does not offer and the Linux fast paths in `platform`.

pub mod address;
pub mod auth;
pub mod error;
pub mod group;
pub mod interface;
pub mod message;
pub mod options;

#[cfg(all(feature = "tokio", unix))]
mod async_group;
mod budget;
mod membership;
mod platform;
mod upkeep;

// The C API: present only in the C build (`--features capi`), never in a Rust dependent's.
#[cfg(feature = "capi")]
mod ffi;
mod sys;

pub use address::Timeout;
#[cfg(all(feature = "tokio", unix))]
pub use async_group::AsyncGroup;
pub use auth::{AuthCounters, GroupKey};
pub use error::{Error, ErrorKind, Result};
pub use group::{Group, Received};
pub use interface::Interface;
pub use message::{Message, MAX_MESSAGE_SIZE};
pub use options::JoinOptions;
pub use platform::{capabilities, Capabilities};
pub use upkeep::MembershipStatus;
