//! A joined multicast group: one UDP socket bound to the group's address and port.
//!
//! Concurrency design: the socket lives in an `RwLock<Option<Socket>>`. Sends and
//! receives hold the read side for their whole call (so the descriptor cannot be closed,
//! and its number reused, under them). `close` first marks the group closed and shuts the
//! socket down, which wakes every receiver blocked in `poll` at once; they return
//! [`ErrorKind::Closed`] and release the read side, and only then does `close` take the
//! write side and close the descriptor.
//!
//! One file per path: `join` (choosing the interface, building the handle), `send`,
//! `receive` (the waiting loop and the receive that does not wait), `batch` (many
//! datagrams per system call) and `sealed` (authenticated groups).

mod batch;
mod join;
mod receive;
mod sealed;
mod send;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use socket2::{SockAddr, Socket};

use self::receive::Coalesced;
use self::sealed::Sealed;
use crate::budget::Budget;
use crate::error::{Error, ErrorKind, Result};
use crate::interface::Interface;
use crate::sys;
use crate::upkeep::{MembershipStatus, Watched};

/// A received datagram's length, sender and delivery metadata; the payload is in the
/// caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// How many bytes of the buffer hold the datagram.
    pub len: usize,
    /// The sender's address and port.
    pub source: SocketAddr,
    /// The address the datagram was sent to: this handle's group (IP_PKTINFO).
    pub destination: Option<IpAddr>,
    /// The kernel index of the interface it arrived on (IP_PKTINFO).
    pub interface_index: Option<u32>,
}

/// A joined multicast group. All methods take `&self` and are safe to call from any
/// number of threads at once; share it with `Arc`.
#[derive(Debug)]
pub struct Group {
    // Shared with the upkeep thread, which joins again through it (see upkeep.rs).
    socket: Arc<RwLock<Option<Socket>>>,
    closed: AtomicBool,
    // Held across peek-then-consume so concurrent receivers never split a datagram.
    receive_lock: Mutex<()>,
    // Whether the last receive found nothing queued. If so, the next one waits in poll
    // first instead of trying a read that would most likely fail: one syscall fewer per
    // message in request/response traffic, none more in a stream.
    queue_was_empty: AtomicBool,
    // The SO_RCVTIMEO now set on the socket, held by the one receiver that waits inside a
    // blocking recv (one syscall per datagram, as a raw socket user would). Receivers
    // that find it taken wait in poll instead, so each keeps its own timeout.
    blocking_receiver: Mutex<Option<Duration>>,
    // With UDP_GRO on, the run being handed out; None for handles without GRO.
    coalesced: Option<Mutex<Coalesced>>,
    // Whether UDP_SEGMENT sends work here; cleared the first time the kernel refuses.
    gso: AtomicBool,
    // Segments must fit the path MTU unfragmented; the smallest size refused so far
    // (EMSGSIZE/EINVAL), above which runs go out with sendmmsg instead.
    gso_size_limit: AtomicUsize,
    // The kernel's last reported count of datagrams dropped for a full buffer.
    dropped: AtomicU32,
    // The send-rate limit of the join options, if any.
    budget: Option<Mutex<Budget>>,
    // For a group joined with a key: every datagram sealed and opened (auth.rs).
    sealed: Option<Sealed>,
    destination: SockAddr,
    group: IpAddr,
    // The membership as it stands, kept in place by the upkeep thread.
    upkeep: Arc<Watched>,
    // The largest UDP payload of the group's family; a buffer this large can never
    // truncate a datagram, so a receive into it needs no peek first.
    max_message: usize,
    port: u16,
    local_addr: SocketAddr,
    // sys::fork_generation() at join: a different value now means this process is a
    // forked child holding a copy of its parent's handle (see `inherited`).
    fork_generation: u64,
}

impl Group {
    /// Leaves the group and closes the socket. Receivers blocked on this group return
    /// [`ErrorKind::Closed`] at once; later calls do too. Closing again is a no-op.
    ///
    /// In a forked child, closing an inherited handle only gives up the child's copy of
    /// the descriptor (when the handle is dropped): the parent's membership and socket
    /// are untouched, and nothing waits for calls that were in flight in the parent.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) || self.inherited() {
            return Ok(());
        }
        {
            let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(socket) = guard.as_ref() {
                // Leave first so the membership ends now, not when the last in-flight call
                // lets go. Both calls may fail harmlessly (shutdown of an unconnected UDP
                // socket reports ENOTCONN yet still wakes its waiters).
                let _ = self.leave(socket);
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
        // Waits for in-flight calls, which the shutdown has woken, then closes the fd.
        let socket = self
            .socket
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(socket);
        Ok(())
    }

    /// Whether [`close`](Self::close) has been called, or this process is a forked
    /// child that inherited the handle (there it acts as closed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.inherited()
    }

    /// Whether this process is a fork of the one that joined. The socket is shared with
    /// the parent then: leaving the group or shutting the socket down would cut the
    /// parent off, and locks may be held by parent threads that do not exist here.
    fn inherited(&self) -> bool {
        sys::fork_generation() != self.fork_generation
    }

    /// The group address.
    pub fn group_addr(&self) -> IpAddr {
        self.group
    }

    /// The largest message this group sends: 65,507 bytes for IPv4, 65,527 for IPv6,
    /// less [`auth::OVERHEAD`](crate::auth::OVERHEAD) (30) for an authenticated group.
    pub fn max_message_size(&self) -> usize {
        self.max_payload()
    }

    /// The group port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket's bound address (the group address and port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The interface the group is on, if one was named at join (or, for a link-scoped
    /// IPv6 group, chosen by the kernel's route); after a rejoin, the interface as it is now.
    pub fn interface(&self) -> Option<Interface> {
        self.upkeep.interface()
    }

    /// Whether the membership is in place now: joined on an interface that is up, on
    /// one that is down, or gone (its interface deleted, or no multicast route left).
    /// Receives wait on in every case; this is how to learn why nothing arrives.
    pub fn membership_status(&self) -> MembershipStatus {
        self.upkeep.status()
    }

    /// How many times the library has joined the group again on a re-created (or, for
    /// the kernel's choice, re-routed) interface since the join.
    pub fn rejoins(&self) -> u64 {
        self.upkeep.rejoins()
    }

    /// The socket's receive buffer as the kernel reports it (`SO_RCVBUF`): Linux doubles
    /// the requested size for its bookkeeping and caps the request at
    /// `net.core.rmem_max`, so this is what was granted, not what was asked for.
    pub fn receive_buffer_size(&self) -> Result<usize> {
        let guard = self.read_socket("reading the receive buffer")?;
        let socket = self.open_socket_or(&guard, "reading the receive buffer")?;
        socket
            .recv_buffer_size()
            .map_err(|e| Error::io("cannot read SO_RCVBUF", &e))
    }

    /// `f` of the socket while the group is open (the system's handle of it, say: see
    /// `raw_fd` in sys/unix.rs, `raw_socket` in sys/windows.rs).
    pub(crate) fn with_open_socket<R>(&self, f: impl FnOnce(&Socket) -> R) -> Option<R> {
        if self.is_closed() {
            return None;
        }
        let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().filter(|_| !self.is_closed()).map(f)
    }

    fn open_socket_or<'a>(&self, guard: &'a Option<Socket>, operation: &str) -> Result<&'a Socket> {
        match guard.as_ref() {
            Some(socket) if !self.is_closed() => Ok(socket),
            _ => Err(self.closed_error(operation)),
        }
    }

    /// The socket lock, unless the group is closed or inherited across fork (a parent
    /// thread's lock state may have been copied, never to be released here).
    fn read_socket(&self, operation: &str) -> Result<RwLockReadGuard<'_, Option<Socket>>> {
        if self.is_closed() {
            return Err(self.closed_error(operation));
        }
        Ok(self.socket.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn closed_error(&self, operation: &str) -> Error {
        if self.inherited() && !self.closed.load(Ordering::SeqCst) {
            Error::new(
                ErrorKind::Closed,
                format!(
                    "{operation} failed: this handle was inherited across fork() and is closed \
                     in the child; join the group again in this process"
                ),
            )
        } else {
            Error::closed(operation)
        }
    }

    fn leave(&self, socket: &Socket) -> std::io::Result<()> {
        self.upkeep.membership().leave(socket)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
