//! [`AsyncGroup`]: a group for tokio (feature `tokio`, Unix), so that a waiting receive
//! is a parked task, not a thread. It is the core's one waiting model with tokio's wait:
//! wait until the descriptor is readable (tokio's `AsyncFd`), then receive without
//! waiting ([`Group::try_receive`]).
//!
//! Timeouts are tokio's: `tokio::time::timeout(d, group.receive(&mut buf))`. Dropping a
//! receive future (a timeout, a `select!` that took another branch) loses no datagram:
//! a datagram leaves the socket only inside the poll that returns it.
//!
//! Windows has no `AsyncFd`: there, run [`Group::receive`] in `spawn_blocking`.

use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::address::Timeout;
use crate::error::{Error, Result};
use crate::group::{Group, Received};
use crate::options::JoinOptions;

/// A joined group whose receives are awaited on a tokio runtime. Share it between tasks
/// with an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct AsyncGroup {
    group: Group,
    /// A duplicate of the group's socket, registered with tokio's reactor. Closing the
    /// group shuts the socket down (which wakes every waiting receive) and closes only the
    /// group's own descriptor, so this registration stays valid until the AsyncGroup is
    /// dropped.
    readiness: AsyncFd<OwnedFd>,
}

impl AsyncGroup {
    /// Joins as [`Group::join`] does. Must be called inside a tokio runtime with IO
    /// enabled (`enable_io` or `enable_all`); outside one it fails with `InvalidArgument`.
    pub fn join(group_addr: &str, port: u16, interface: &str) -> Result<AsyncGroup> {
        AsyncGroup::new(Group::join(group_addr, port, interface)?)
    }

    /// Joins as [`Group::join_with`] does (see [`join`](Self::join) for the runtime).
    pub fn join_with(group_addr: &str, port: u16, options: &JoinOptions) -> Result<AsyncGroup> {
        AsyncGroup::new(Group::join_with(group_addr, port, options)?)
    }

    /// Wraps a joined group (see [`join`](Self::join) for the runtime).
    pub fn new(group: Group) -> Result<AsyncGroup> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::invalid(
                "an AsyncGroup needs a tokio runtime: make it inside one (with IO enabled)",
            ));
        }
        let duplicate = group
            .with_open_socket(socket2::Socket::try_clone)
            .ok_or_else(|| Error::closed("AsyncGroup::new"))?
            .map_err(|e| Error::io("AsyncGroup::new failed: duplicating the socket", &e))?;
        let readiness = crate::sys::register_readable(OwnedFd::from(duplicate))
            .map_err(|e| Error::io("AsyncGroup::new failed: registering with tokio", &e))?;
        Ok(AsyncGroup { group, readiness })
    }

    /// Sends one datagram, as [`Group::send`]. A UDP send finishes at once unless the
    /// socket's send buffer is full, when it waits for room in this thread.
    pub async fn send(&self, data: &[u8]) -> Result<()> {
        self.group.send(data)
    }

    /// Waits for one datagram and receives it into `buf`. Fails with the closed error
    /// once the group is closed (waiting receives included), and with `BufferTooSmall`
    /// for a datagram larger than `buf` (which stays queued). Cancel-safe.
    pub async fn receive(&self, buf: &mut [u8]) -> Result<Received> {
        self.when_ready(|group| group.try_receive(buf)).await
    }

    /// Waits for a datagram, then takes up to `bufs.len()` that are queued, as
    /// [`Group::receive_batch`] does; returns how many (at least one). Cancel-safe.
    pub async fn receive_batch(
        &self,
        bufs: &mut [&mut [u8]],
        received: &mut [Option<Received>],
    ) -> Result<usize> {
        if bufs.is_empty() || received.is_empty() {
            return Ok(0);
        }
        let now = Timeout::After(Duration::ZERO);
        self.when_ready(|group| match group.receive_batch(now, bufs, received)? {
            0 => Ok(None),
            n => Ok(Some(n)),
        })
        .await
    }

    /// Leaves the group, as [`Group::close`]: waiting receives end with the closed error.
    pub fn close(&self) -> Result<()> {
        self.group.close()
    }

    /// The group, for everything else (addresses, counters, key rotation).
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// `attempt` (a receive that does not wait) each time the descriptor is readable,
    /// until it yields. tokio's readiness is edge-triggered: it is cleared only when the
    /// queue is empty, and when an attempt returned nothing yet left datagrams queued
    /// (an authenticated group judges at most 64 forgeries per attempt) the task yields
    /// and tries again.
    async fn when_ready<T>(
        &self,
        mut attempt: impl FnMut(&Group) -> Result<Option<T>>,
    ) -> Result<T> {
        loop {
            let mut ready = self
                .readiness
                .readable()
                .await
                .map_err(|e| Error::io("receive failed: waiting for the descriptor", &e))?;
            if let Some(received) = attempt(&self.group)? {
                return Ok(received);
            }
            if self.group.queued_now()? {
                drop(ready);
                tokio::task::yield_now().await;
            } else {
                ready.clear_ready();
            }
        }
    }
}

impl From<AsyncGroup> for Group {
    /// The group itself, for blocking use (its tokio registration is dropped).
    fn from(group: AsyncGroup) -> Group {
        group.group
    }
}
