//! A joined multicast group: one UDP socket bound to the group's address and port.
//!
//! Concurrency design: the socket lives in an `RwLock<Option<Socket>>`. Sends and
//! receives hold the read side for their whole call (so the descriptor cannot be closed,
//! and its number reused, under them). `close` first marks the group closed and shuts the
//! socket down, which wakes every receiver blocked in `poll` at once; they return
//! [`ErrorKind::Closed`] and release the read side, and only then does `close` take the
//! write side and close the descriptor.

use std::io::ErrorKind as IoKind;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use crate::address::{self, Timeout};
use crate::auth::{self, AuthCounters, GroupKey};
use crate::budget::Budget;
use crate::error::{Error, ErrorKind, Result};
use crate::interface::{self, Interface};
use crate::membership::Membership;
use crate::message::{self, Message};
use crate::options::JoinOptions;
use crate::platform;
use crate::sys;
use crate::upkeep::{MembershipStatus, Wanted, Watched};

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

/// A GRO run the kernel handed over in one read, served to receivers one datagram at a
/// time. Only handles joined with `gro` have one.
#[derive(Debug)]
struct Coalesced {
    buf: Vec<u8>,
    len: usize,
    offset: usize,
    segment: usize,
    remaining: usize,
    meta: platform::RecvMeta,
}

thread_local! {
    // Where this thread seals its sends (a message plus auth::OVERHEAD, up to 64 KiB).
    static SEALING: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An authenticated group's keys and state (see [`auth`]).
struct Sealed {
    keys: RwLock<auth::Keyring>,
    sender: Mutex<auth::Sender>,
    inbox: Mutex<Inbox>,
    to: auth::Destination,
}

/// Sealed datagrams are read whole into `scratch` and opened there; a message too
/// large for the caller's buffer waits in `pending`, as an unread datagram would.
struct Inbox {
    scratch: Vec<u8>,
    pending: Option<(Range<usize>, Received)>,
    replays: auth::Replays,
    counters: AuthCounters,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Sealed {
    fn new(
        options: &JoinOptions,
        to: auth::Destination,
        datagram_max: usize,
    ) -> Result<Option<Sealed>> {
        let Some(key) = &options.group_key else {
            return Ok(None);
        };
        Ok(Some(Sealed {
            keys: RwLock::new(auth::Keyring::new(key, options.previous_key.as_ref())?),
            sender: Mutex::new(auth::Sender::new()?),
            inbox: Mutex::new(Inbox {
                scratch: vec![0; datagram_max],
                pending: None,
                replays: auth::Replays::default(),
                counters: AuthCounters::default(),
            }),
            to,
        }))
    }

    /// Seals `message` into `datagram`, reusing its memory.
    fn seal(&self, message: &[u8], datagram: &mut Vec<u8>) -> Result<()> {
        let (sender, seq) = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_nonce()?;
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        auth::seal_into(&keys, self.to, sender, seq, message, datagram);
        Ok(())
    }

    /// Opens the datagram in `inbox.scratch[..len]`: its message's range, or `None`
    /// (counted) when it is not authentic or a replay.
    fn open(&self, inbox: &mut Inbox, len: usize) -> Option<Range<usize>> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let verdict = auth::open(&keys, self.to, &mut inbox.scratch[..len]).and_then(|opened| {
            if inbox.replays.accept(opened.sender, opened.seq) {
                Ok(opened.message)
            } else {
                Err(auth::Rejection::Replayed)
            }
        });
        verdict.map_err(|why| inbox.counters.count(why)).ok()
    }
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
    /// Joins `group_addr` (an IPv4 or IPv6 multicast literal; an IPv6 one may carry a
    /// zone, `ff02::1%eth0`) on `port`, on `interface` (a name such as `eth0`, one of this
    /// host's addresses, or `""` for the kernel's choice, by the multicast route). Go's
    /// spellings `[ff02::1]` and `[ff02::1%eth0]` are taken too; the text is exact.
    ///
    /// The socket is bound to the group address with `SO_REUSEADDR`, so several handles
    /// on one host each receive every datagram, and with `IP_MULTICAST_ALL` off, so no
    /// other group joined on the same port leaks in. Loopback is on and the TTL (hop
    /// limit) is 1.
    pub fn join(group_addr: &str, port: u16, interface: &str) -> Result<Group> {
        Group::join_with(
            group_addr,
            port,
            &JoinOptions::default().interface(interface),
        )
    }

    /// Joins as [`join`](Self::join) does, with the interface, TTL, loopback and receive
    /// buffer taken from `options`.
    pub fn join_with(group_addr: &str, port: u16, options: &JoinOptions) -> Result<Group> {
        let (group, zone) = address::parse_group_spec(group_addr)?;
        let port = address::parse_port(i64::from(port))?;
        options.validate()?;
        let interface = choose_interface(group, zone, options)?;
        let membership = Membership {
            group,
            source: source_of(group, &options.source)?,
            by_address: options.interface.parse::<IpAddr>().is_ok(),
            interface,
        };
        let wanted = wanted_interface(&membership, zone, options);
        let socket = membership.open(port, options)?;
        // The group and port, also where the socket is bound to the wildcard address
        // (Windows): what the handle receives.
        let local_addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .filter(|a| !a.ip().is_unspecified())
            .or_else(|| membership.destination(port).as_socket())
            .ok_or_else(|| Error::new(ErrorKind::Io, "join failed: socket has no local address"))?;
        let max_message = match group {
            IpAddr::V4(_) => message::MAX_MESSAGE_SIZE,
            IpAddr::V6(_) => message::MAX_MESSAGE_SIZE_V6,
        };
        let sealed = Sealed::new(options, auth::Destination { group, port }, max_message)?;
        let socket = Arc::new(RwLock::new(Some(socket)));
        let upkeep = Watched::new(
            socket.clone(),
            membership.clone(),
            wanted,
            options.rejoin,
            options.reannounce,
        );
        Ok(Group {
            socket,
            closed: AtomicBool::new(false),
            receive_lock: Mutex::new(()),
            queue_was_empty: AtomicBool::new(false),
            blocking_receiver: Mutex::new(None),
            coalesced: options.gro.then(|| {
                Mutex::new(Coalesced {
                    buf: vec![0; 65_535],
                    len: 0,
                    offset: 0,
                    segment: 0,
                    remaining: 0,
                    meta: platform::RecvMeta::default(),
                })
            }),
            gso: AtomicBool::new(true),
            gso_size_limit: AtomicUsize::new(usize::MAX),
            dropped: AtomicU32::new(0),
            budget: Budget::new(
                options.max_datagrams_per_second,
                options.max_bytes_per_second,
            )
            .map(Mutex::new),
            sealed,
            destination: membership.destination(port),
            group,
            upkeep,
            max_message,
            port,
            local_addr,
            fork_generation: sys::fork_generation(),
        })
    }

    /// Sends `data` (0 to [`message::MAX_MESSAGE_SIZE`] bytes) to the group as one datagram.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.check_size(data.len())?;
        let guard = self.read_socket("send")?;
        let socket = self.open_socket_or(&guard, "send")?;
        self.spend([data.len()])?;
        let sent = match &self.sealed {
            Some(sealed) => {
                let send = |datagram: &mut Vec<u8>| {
                    sealed.seal(data, datagram)?;
                    Ok(sys::send_to(socket, datagram, &self.destination))
                };
                // Each thread seals into a buffer of its own, kept for its next send;
                // while the thread exits (its buffer gone), into a new one.
                SEALING
                    .try_with(|buffer| buffer.try_borrow_mut().ok().map(|mut d| send(&mut d)))
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| send(&mut Vec::new()))?
            }
            None => sys::send_to(socket, data, &self.destination),
        };
        match sent {
            Ok(_) => Ok(()),
            Err(_) if self.is_closed() => Err(Error::closed("send")),
            Err(e) => Err(self.send_error(&e)),
        }
    }

    /// Sends JSON text re-encoded as Go's `encoding/json` writes it (see
    /// [`message::canonical_json`]): scriptling's dict messages.
    pub fn send_json(&self, json: &str) -> Result<()> {
        self.send(&message::canonical_json(json)?)
    }

    /// Receives one datagram into `buf`. `Ok(None)` means the timeout passed with nothing
    /// received. A datagram larger than `buf` is not consumed: the error is
    /// [`ErrorKind::BufferTooSmall`] with [`Error::needed_len`] set.
    pub fn receive(&self, timeout: Timeout, buf: &mut [u8]) -> Result<Option<Received>> {
        let deadline = match timeout {
            Timeout::Never => None,
            Timeout::After(d) => Some(Instant::now().checked_add(d)),
        };
        let guard = self.read_socket("receive")?;
        let socket = self.open_socket_or(&guard, "receive")?;
        let blocking = blocking_part(timeout).filter(|_| {
            sys::BLOCKING_RECEIVE
                && self.coalesced.is_none()
                && self.sealed.is_none()
                && buf.len() >= self.max_message
        });
        if let Some(wait) = blocking {
            if let Ok(mut current) = self.blocking_receiver.try_lock() {
                match self.receive_blocking(socket, wait, buf, &mut current) {
                    Some(Ok(received)) => {
                        self.queue_was_empty.store(false, Ordering::Relaxed);
                        return Ok(Some(received));
                    }
                    Some(Err(e)) => return Err(e),
                    None => self.queue_was_empty.store(true, Ordering::Relaxed),
                }
            }
        }
        let mut poll_first = timeout != Timeout::After(Duration::ZERO)
            && self.queue_was_empty.load(Ordering::Relaxed);
        loop {
            let tried = !std::mem::take(&mut poll_first);
            if tried {
                let attempt = self.try_receive(socket, buf);
                if attempt.is_err() {
                    // A datagram too large for `buf` stays for the next call, which must
                    // not wait for the descriptor first: under GRO or sealing it may be
                    // held here, no longer in the kernel's queue.
                    self.queue_was_empty.store(false, Ordering::Relaxed);
                }
                if let Some(received) = attempt? {
                    self.queue_was_empty.store(false, Ordering::Relaxed);
                    if self.is_closed() {
                        return Err(Error::closed("receive"));
                    }
                    return Ok(Some(received));
                }
                self.queue_was_empty.store(true, Ordering::Relaxed);
            }
            let wait = match deadline {
                None | Some(None) => None,
                Some(Some(d)) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    // Time is up, but never without one look at the queue.
                    _ if tried => return Ok(None),
                    _ => continue,
                },
            };
            // Where closing cannot wake a waiting receiver, it waits in slices.
            let wait = match (wait, sys::CLOSE_WAKE_SLICE) {
                (Some(w), Some(slice)) => Some(w.min(slice)),
                (None, slice) => slice,
                (w, None) => w,
            };
            sys::wait_readable(socket, wait).map_err(|e| self.receive_error(&e))?;
            if self.is_closed() {
                return Err(Error::closed("receive"));
            }
        }
    }

    /// Sends each of `datagrams` as its own datagram, in order, in as few system calls as
    /// the kernel allows: runs of equal-sized datagrams (the last of a run may be
    /// shorter) go out with UDP generic segmentation offload, one call per run of up to
    /// 64; the rest with sendmmsg. Receivers see exactly the datagrams of one-by-one sends.
    ///
    /// Returns how many were sent; fewer than `datagrams.len()` means the kernel stopped
    /// taking them (send the rest again to learn why). An error means none was sent. A
    /// datagram over the size limit fails the whole batch before anything is sent.
    pub fn send_batch(&self, datagrams: &[&[u8]]) -> Result<usize> {
        for d in datagrams {
            self.check_size(d.len())?;
        }
        let guard = self.read_socket("send")?;
        let socket = self.open_socket_or(&guard, "send")?;
        let allowed = self.spend(datagrams.iter().map(|d| d.len()))?;
        let datagrams = &datagrams[..allowed];
        let Some(sealed) = &self.sealed else {
            return self.send_datagrams(socket, datagrams);
        };
        let sealed = datagrams
            .iter()
            .map(|d| {
                let mut datagram = Vec::with_capacity(d.len() + auth::OVERHEAD);
                sealed.seal(d, &mut datagram).map(|()| datagram)
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
        self.send_datagrams(socket, &refs)
    }

    /// Sends datagrams ready for the wire, GSO runs first (see `send_batch`).
    fn send_datagrams(&self, socket: &Socket, datagrams: &[&[u8]]) -> Result<usize> {
        let mut sent = 0;
        while sent < datagrams.len() {
            let rest = &datagrams[sent..];
            let run = self.gso_run(rest);
            if run >= 2 {
                match platform::send_gso(socket, &rest[..run], &self.destination) {
                    Ok(()) => {
                        sent += run;
                        continue;
                    }
                    Err(e) if gso_too_big(&e) => {
                        self.gso_size_limit
                            .fetch_min(rest[0].len() - 1, Ordering::Relaxed);
                    }
                    Err(e) if gso_unsupported(&e) => self.gso.store(false, Ordering::Relaxed),
                    Err(e) => return self.batch_result(sent, &e),
                }
            }
            // Up to the next run worth a GSO call (or all of it, once GSO is off).
            let stretch = (1..rest.len())
                .find(|&i| self.gso_run(&rest[i..]) >= 2)
                .unwrap_or(rest.len());
            match platform::sendmmsg(socket, &rest[..stretch], &self.destination) {
                Ok(0) => return Ok(sent),
                Ok(n) => sent += n,
                Err(e) => return self.batch_result(sent, &e),
            }
        }
        Ok(sent)
    }

    /// The largest message a caller may send: the datagram limit less sealing's overhead.
    fn max_payload(&self) -> usize {
        self.max_message - self.sealed.as_ref().map_or(0, |_| auth::OVERHEAD)
    }

    fn check_size(&self, len: usize) -> Result<()> {
        if self.sealed.is_some() && len > self.max_payload() {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "message of {len} bytes is larger than an authenticated group's {}-byte \
                     limit (the UDP limit less {} bytes of sealing)",
                    self.max_payload(),
                    auth::OVERHEAD
                ),
            ));
        }
        message::check_size_for(len, self.max_payload())
    }

    /// How many datagrams of these sizes the send budget allows now (all, without one);
    /// `ErrorKind::RateLimited` when it allows none.
    fn spend(&self, sizes: impl IntoIterator<Item = usize>) -> Result<usize> {
        let sizes = sizes.into_iter();
        match &self.budget {
            None => Ok(sizes.count()),
            Some(budget) => budget
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(sizes, Instant::now()),
        }
    }

    /// How many datagrams from the start of `rest` one GSO send can carry here (1: none).
    fn gso_run(&self, rest: &[&[u8]]) -> usize {
        let usable = self.gso.load(Ordering::Relaxed)
            && rest
                .first()
                .is_some_and(|d| d.len() <= self.gso_size_limit.load(Ordering::Relaxed));
        if usable {
            gso_run(rest, self.max_message)
        } else {
            rest.len().min(1)
        }
    }

    fn batch_result(&self, sent: usize, err: &std::io::Error) -> Result<usize> {
        match sent {
            0 if self.is_closed() => Err(Error::closed("send")),
            0 => Err(self.send_error(err)),
            _ => Ok(sent),
        }
    }

    /// Receives up to `bufs.len()` datagrams, one per buffer, recording each in
    /// `received` (which must be as long): waits up to `timeout` for the first, then takes
    /// whatever else is already queued without waiting. Returns how many were filled (0 on
    /// timeout). A datagram larger than its buffer stays queued; the batch ends before it
    /// (or fails with [`ErrorKind::BufferTooSmall`] if it is the first).
    pub fn receive_batch(
        &self,
        timeout: Timeout,
        bufs: &mut [&mut [u8]],
        received: &mut [Option<Received>],
    ) -> Result<usize> {
        let count = bufs.len().min(received.len());
        let Some(first) = bufs.first_mut().filter(|_| count > 0) else {
            return Ok(0);
        };
        received[0] = self.receive(timeout, first)?;
        if received[0].is_none() {
            return Ok(0);
        }
        let guard = self.read_socket("receive")?;
        let socket = self.open_socket_or(&guard, "receive")?;
        let mut filled = 1;
        // Buffers that cannot truncate take the rest in one recvmmsg call per 64.
        if self.coalesced.is_none()
            && self.sealed.is_none()
            && bufs[filled..count]
                .iter()
                .all(|b| b.len() >= self.max_message)
        {
            let _serialised = self
                .receive_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut results: [platform::MmsgResult; platform::MMSG_MAX] =
                std::array::from_fn(|_| platform::MmsgResult::new());
            while filled < count {
                let end = count.min(filled + platform::MMSG_MAX);
                let n = match platform::recvmmsg(
                    socket,
                    self.group,
                    &mut bufs[filled..end],
                    &mut results,
                ) {
                    Ok(n) => n,
                    Err(_) => break,
                };
                for result in &results[..n] {
                    received[filled] = Some(self.accept(platform::meta_of(result))?);
                    filled += 1;
                }
                if filled < end {
                    break;
                }
            }
            return Ok(filled);
        }
        // Under GRO, one lock for the whole batch: most of it comes out of one run.
        let mut run = self
            .coalesced
            .as_ref()
            .filter(|_| self.sealed.is_none())
            .map(|c| c.lock().unwrap_or_else(PoisonError::into_inner));
        while filled < count {
            let next = match run.as_deref_mut() {
                Some(run) => self.try_receive_coalesced(socket, bufs[filled], run),
                None => self.try_receive(socket, bufs[filled]),
            };
            match next {
                Ok(Some(r)) => received[filled] = Some(r),
                Ok(None) | Err(_) => break,
            }
            filled += 1;
        }
        Ok(filled)
    }

    /// How many datagrams the kernel dropped for this socket because its receive buffer
    /// was full (SO_RXQ_OVFL), as of the last datagram received: loss you can see.
    pub fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Receives one datagram as an owned [`Message`]; `Ok(None)` on timeout.
    pub fn receive_message(&self, timeout: Timeout) -> Result<Option<Message>> {
        let mut buf = vec![0u8; self.max_message];
        Ok(self.receive(timeout, &mut buf)?.map(|r| {
            buf.truncate(r.len);
            Message {
                data: buf,
                source: r.source,
            }
        }))
    }

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
    /// less [`auth::OVERHEAD`] (30) for an authenticated group.
    pub fn max_message_size(&self) -> usize {
        self.max_payload()
    }

    /// Whether the group was joined with a key (see [`JoinOptions::group_key`]).
    pub fn is_authenticated(&self) -> bool {
        self.sealed.is_some()
    }

    /// Datagrams an authenticated group dropped, by reason (all zero for a plain group).
    pub fn auth_counters(&self) -> AuthCounters {
        self.sealed
            .as_ref()
            .map_or_else(AuthCounters::default, |s| {
                s.inbox
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .counters
            })
    }

    /// Rotates an authenticated group's key: sends are sealed under `key` from now on,
    /// and the key it replaces is still accepted if `keep_previous` (while the other
    /// members change over); a key kept from an earlier rotation is forgotten.
    pub fn rotate_key(&self, key: &GroupKey, keep_previous: bool) -> Result<()> {
        let sealed = self.sealed.as_ref().ok_or_else(|| {
            Error::invalid("rotate_key failed: the group was joined without a key")
        })?;
        sealed
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .rotate(key, keep_previous)
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

    /// One blocking recv under SO_RCVTIMEO for `wait` (zero: for ever), for a buffer that
    /// cannot truncate. `None` when it ends without a datagram (its time is up, a signal,
    /// or someone set O_NONBLOCK on the descriptor): the caller waits in poll for the rest
    /// of its own deadline, which poll keeps precisely.
    fn receive_blocking(
        &self,
        socket: &Socket,
        wait: Duration,
        buf: &mut [u8],
        current: &mut Option<Duration>,
    ) -> Option<Result<Received>> {
        if *current != Some(wait) {
            let setting = (!wait.is_zero()).then_some(wait);
            if let Err(e) = socket.set_read_timeout(setting) {
                return Some(Err(Error::io("receive failed: SO_RCVTIMEO", &e)));
            }
            *current = Some(wait);
        }
        match platform::recv_with_meta(socket, self.group, buf, 0) {
            Ok(meta) => Some(self.accept(meta)),
            Err(_) if self.is_closed() => Some(Err(Error::closed("receive"))),
            Err(e) if matches!(e.kind(), IoKind::Interrupted | IoKind::WouldBlock) => None,
            Err(e) => Some(Err(self.receive_error(&e))),
        }
    }

    /// One non-blocking attempt; `Ok(None)` when nothing is queued.
    fn try_receive(&self, socket: &Socket, buf: &mut [u8]) -> Result<Option<Received>> {
        if let Some(sealed) = &self.sealed {
            return self.try_receive_sealed(socket, buf, sealed);
        }
        if let Some(coalesced) = &self.coalesced {
            let mut run = coalesced.lock().unwrap_or_else(PoisonError::into_inner);
            return self.try_receive_coalesced(socket, buf, &mut run);
        }
        let _serialised = self
            .receive_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if buf.len() < self.max_message {
            match platform::queued_len(socket, self.group) {
                Ok(Some(n)) if n > buf.len() => return Err(Error::buffer_too_small(n, buf.len())),
                Ok(Some(_)) => {}
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.receive_error(&e)),
            }
        }
        self.receive_now(socket, buf)?
            .map(|meta| self.accept(meta))
            .transpose()
    }

    /// One receive that does not wait: what recvmsg reported, or `None` when nothing
    /// is queued.
    fn receive_now(&self, socket: &Socket, buf: &mut [u8]) -> Result<Option<platform::RecvMeta>> {
        match platform::recv_with_meta(socket, self.group, buf, sys::DONT_WAIT) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(self.receive_error(&e)),
        }
    }

    /// A failed receive, or `Closed` when the group was closed under it (where the
    /// system reports the shutdown as an error, WSAESHUTDOWN on Windows, rather than
    /// as a datagram without a sender).
    fn receive_error(&self, err: &std::io::Error) -> Error {
        if self.is_closed() {
            Error::closed("receive")
        } else {
            Error::io("receive failed", err)
        }
    }

    /// Under GRO: hands out the next datagram of the current run, reading a new run
    /// when it is used up. A datagram larger than `buf` stays for the next call.
    fn try_receive_coalesced(
        &self,
        socket: &Socket,
        buf: &mut [u8],
        run: &mut Coalesced,
    ) -> Result<Option<Received>> {
        if run.remaining == 0 {
            let Some(meta) = self.receive_now(socket, &mut run.buf)? else {
                return Ok(None);
            };
            // The sender (or its absence after close) is checked as each datagram is handed out.
            run.len = meta.len;
            run.offset = 0;
            run.segment = meta.segment.filter(|&s| s > 0).unwrap_or(run.len);
            run.remaining = if run.len == 0 {
                1
            } else {
                run.len.div_ceil(run.segment)
            };
            run.meta = meta;
        }
        let size = run.segment.min(run.len - run.offset);
        let capacity = buf.len();
        let out = buf
            .get_mut(..size)
            .ok_or_else(|| Error::buffer_too_small(size, capacity))?;
        out.copy_from_slice(&run.buf[run.offset..run.offset + size]);
        run.offset += size;
        run.remaining -= 1;
        let mut received = self.accept(run.meta)?;
        received.len = size;
        Ok(Some(received))
    }

    /// For an authenticated group: the next authentic message, reading (and dropping,
    /// counted) whatever else is queued before it; `Ok(None)` when nothing is left.
    fn try_receive_sealed(
        &self,
        socket: &Socket,
        buf: &mut [u8],
        sealed: &Sealed,
    ) -> Result<Option<Received>> {
        let mut inbox = sealed.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((message, received)) = inbox.pending.clone() {
                let capacity = buf.len();
                let out = buf
                    .get_mut(..message.len())
                    .ok_or_else(|| Error::buffer_too_small(message.len(), capacity))?;
                out.copy_from_slice(&inbox.scratch[message.clone()]);
                inbox.pending = None;
                return Ok(Some(Received {
                    len: message.len(),
                    ..received
                }));
            }
            let received = match &self.coalesced {
                Some(c) => {
                    let mut run = c.lock().unwrap_or_else(PoisonError::into_inner);
                    self.try_receive_coalesced(socket, &mut inbox.scratch, &mut run)?
                }
                None => self
                    .receive_now(socket, &mut inbox.scratch)?
                    .map(|meta| self.accept(meta))
                    .transpose()?,
            };
            let Some(received) = received else {
                return Ok(None);
            };
            if let Some(message) = sealed.open(&mut inbox, received.len) {
                inbox.pending = Some((message, received));
            }
        }
    }

    /// Turns what recvmsg reported into a `Received`, noting the drop counter.
    fn accept(&self, meta: platform::RecvMeta) -> Result<Received> {
        if let Some(dropped) = meta.dropped {
            self.dropped.store(dropped, Ordering::Relaxed);
        }
        match meta.source {
            Some(source) if !self.is_closed() => Ok(Received {
                len: meta.len,
                source,
                destination: meta.destination,
                interface_index: meta.interface_index,
            }),
            // No sender: the socket was shut down by close.
            _ => Err(Error::closed("receive")),
        }
    }

    fn leave(&self, socket: &Socket) -> std::io::Result<()> {
        self.upkeep.membership().leave(socket)
    }

    fn send_error(&self, err: &std::io::Error) -> Error {
        let interface = self.interface();
        let iface = interface.as_ref().map(|i| i.name.as_str());
        match (err, iface) {
            (e, Some(name)) if sys::is_network_down(e) => Error::io(
                &format!(
                    "send failed: interface {name} is down; bring it up ({}) or name another interface",
                    sys::link_up_hint(name)
                ),
                err,
            ),
            (e, None) if sys::is_unreachable(e) => {
                let route = sys::multicast_route_hint(self.group);
                Error::io(
                    &format!(
                        "send failed: no route to the group; name an interface or add a \
                         multicast route ({route})"
                    ),
                    err,
                )
            }
            _ => Error::io("send failed", err),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// How long a receive may wait inside one blocking recv under SO_RCVTIMEO (zero: for
/// ever), before poll takes over for the rest of its timeout; `None`: poll only.
///
/// The kernel rounds SO_RCVTIMEO up to its scheduler tick (up to 10 ms) and its timer
/// wheel lets long timers fire up to an eighth late, so a timeout kept that way overran
/// by 7 ms at 1 ms and 30 ms at 0.5 s. ppoll is precise to the timer slack (50 us). So
/// the blocking recv, one system call when a datagram comes, gets only the part of the
/// wait that cannot overrun the deadline; poll waits out the rest precisely.
fn blocking_part(timeout: Timeout) -> Option<Duration> {
    const TICK_AND_SLACK: Duration = Duration::from_millis(20);
    match timeout {
        Timeout::Never => Some(Duration::ZERO),
        Timeout::After(d) => d
            .checked_sub(d / 8 + TICK_AND_SLACK)
            .filter(|part| *part >= Duration::from_millis(1)),
    }
}

/// How many datagrams from the start of `rest` one GSO send can carry: equal sizes, the
/// last possibly shorter, at most 64, all within one UDP payload.
fn gso_run(rest: &[&[u8]], max_payload: usize) -> usize {
    let size = rest.first().map_or(0, |d| d.len());
    if size == 0 {
        return rest.len().min(1);
    }
    let limit = platform::MAX_GSO_SEGMENTS.min(max_payload / size);
    let mut run = 1;
    while run < rest.len() && run < limit && rest[run].len() == size {
        run += 1;
    }
    let total = run * size;
    if run < rest.len()
        && run < limit
        && (1..size).contains(&rest[run].len())
        && total + rest[run].len() <= max_payload
    {
        run += 1;
    }
    run
}

/// The segment size does not fit the path MTU unfragmented.
fn gso_too_big(err: &std::io::Error) -> bool {
    sys::is_message_size(err)
}

/// The kernel or the device cannot do UDP GSO at all (or the platform has none).
fn gso_unsupported(err: &std::io::Error) -> bool {
    sys::is_unsupported(err) || err.kind() == std::io::ErrorKind::Unsupported
}

/// The interface a group is joined on: named in the options (name, address or index)
/// or by an IPv6 zone, and refused when down. None is the kernel's choice, by the
/// multicast route, for every group: link-scoped IPv6 groups too, as Go and scriptling
/// join them.
fn choose_interface(
    group: IpAddr,
    zone: Option<&str>,
    options: &JoinOptions,
) -> Result<Option<Interface>> {
    let v6 = group.is_ipv6();
    let named = match (options.interface.as_str(), options.interface_index) {
        ("", 0) => None,
        ("", index) => Some(interface::resolve_index_for(index, v6)?),
        (spec, _) => Some(interface::resolve_for(spec, v6)?),
    };
    let zoned = zone.map(|z| interface::resolve_for(z, true)).transpose()?;
    let chosen = match (named, zoned) {
        (Some(n), Some(z)) if n.index != z.index => {
            return Err(Error::invalid(format!(
                "the zone %{} and the interface {} differ; name one interface",
                z.name, n.name
            )))
        }
        (n, z) => n.or(z),
    };
    // A link-scoped group is bound with its zone, so the kernel's choice is asked for
    // here rather than left to the join (the interface Go's join ends up on).
    let chosen = match chosen {
        None if address::needs_interface(&group) => Some(routed_interface(group)?),
        chosen => chosen,
    };
    if let Some(i) = chosen.as_ref().filter(|i| !i.up) {
        return Err(Error::new(
            ErrorKind::Interface,
            format!(
                "interface {} is down; bring it up (ip link set {} up) or name another interface",
                i.name, i.name
            ),
        ));
    }
    Ok(chosen)
}

/// How the upkeep thread finds the group's interface again. A link-scoped IPv6 group is
/// bound to its interface's index (its zone), which a re-created interface never has
/// again: it is followed by that index, and reported gone once the interface is.
fn wanted_interface(membership: &Membership, zone: Option<&str>, options: &JoinOptions) -> Wanted {
    if address::needs_interface(&membership.group) {
        return Wanted::Index(membership.interface.as_ref().map_or(0, |i| i.index));
    }
    match (options.interface.as_str(), options.interface_index, zone) {
        ("", 0, None) => Wanted::Route,
        ("", 0, Some(zone)) => Wanted::Spec(zone.to_owned()),
        ("", index, _) => Wanted::Index(index),
        (spec, _, _) => Wanted::Spec(spec.to_owned()),
    }
}

/// The interface the kernel's multicast route for `group` leaves through.
fn routed_interface(group: IpAddr) -> Result<Interface> {
    let index = platform::route_interface(group).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Unsupported {
            return Error::new(
                ErrorKind::Interface,
                format!(
                    "IPv6 group {group} is link-scoped (it exists once per link): name the interface \
                     (an interface name or index, or {group}%IFACE)"
                ),
            );
        }
        Error::new(
            ErrorKind::Interface,
            format!(
                "cannot join {group}: no interface has a route to multicast groups; name an interface \
                 or add a multicast route ({}) ({e})",
                sys::multicast_route_hint(group)
            ),
        )
    })?;
    interface::resolve_index_for(index, true)
}

/// The sender a source-specific join admits, of the group's family.
fn source_of(group: IpAddr, text: &str) -> Result<Option<IpAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    let source: IpAddr = text.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid source address: {} is not an IP address literal",
            crate::error::excerpt(text)
        ))
    })?;
    let broadcast = matches!(source, IpAddr::V4(v4) if v4.is_broadcast());
    if source.is_ipv4() != group.is_ipv4()
        || source.is_multicast()
        || source.is_unspecified()
        || broadcast
    {
        return Err(Error::invalid(format!(
            "source {source} cannot send to group {group}: a source must be a unicast address of the group's family"
        )));
    }
    Ok(Some(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_fail_before_any_socket() {
        assert_eq!(
            Group::join("10.0.0.1", 9999, "").unwrap_err().kind(),
            ErrorKind::NotMulticast
        );
        assert_eq!(
            Group::join("nope", 9999, "").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            Group::join("239.1.1.1", 0, "").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let e = Group::join("239.1.1.1", 9999, "no-such-if0").unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Interface, "interface not found: no-such-if0")
        );
    }
}
