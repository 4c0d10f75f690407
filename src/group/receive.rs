//! Receiving one datagram: waiting, the non-blocking attempt, GRO runs.

use std::io::ErrorKind as IoKind;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::{Group, Received};
use crate::address::Timeout;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::platform;
use crate::sys;

/// A GRO run the kernel handed over in one read, served to receivers one datagram at a
/// time. Only handles joined with `gro` have one.
#[derive(Debug)]
pub(super) struct Coalesced {
    pub(super) buf: Vec<u8>,
    pub(super) len: usize,
    pub(super) offset: usize,
    pub(super) segment: usize,
    pub(super) remaining: usize,
    pub(super) meta: platform::RecvMeta,
}

impl Group {
    /// Receives one datagram into `buf`. `Ok(None)` means the timeout passed with nothing
    /// received. A datagram larger than `buf` is not consumed: the error is
    /// [`ErrorKind::BufferTooSmall`](crate::ErrorKind::BufferTooSmall) with [`Error::needed_len`] set.
    pub fn receive(&self, timeout: Timeout, buf: &mut [u8]) -> Result<Option<Received>> {
        let deadline = Deadline::after(timeout);
        let guard = self.read_socket("receive")?;
        let socket = self.open_socket_or(&guard, "receive")?;
        if let Some(received) = self.receive_blocking_first(socket, timeout, buf) {
            return received.map(Some);
        }
        self.wait_then(socket, deadline, |socket| self.receive_ready(socket, buf))
    }

    /// Receives one datagram that can be delivered now, without waiting: `Ok(None)` when
    /// none can (the queue is empty, or held only what is dropped, such as an
    /// authenticated group's forgeries). It is the step an event loop takes each time the
    /// descriptor ([`raw_fd`](Self::raw_fd)) is readable, and the one [`receive`](Self::receive)
    /// repeats between its own waits. Errors as for `receive`.
    pub fn try_receive(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        let guard = self.read_socket("receive")?;
        let socket = self.open_socket_or(&guard, "receive")?;
        self.receive_ready(socket, buf)
    }

    /// Whether a datagram is queued now (a wait of zero): for event loops whose
    /// readiness is edge-triggered, after [`try_receive`](Self::try_receive) returned
    /// nothing, whether to try again rather than wait for the next datagram.
    #[cfg(all(feature = "tokio", unix))]
    pub(crate) fn queued_now(&self) -> Result<bool> {
        let guard = self.read_socket("receive")?;
        let socket = self.open_socket_or(&guard, "receive")?;
        sys::wait_readable(socket, Some(Duration::ZERO)).map_err(|e| self.receive_error(&e))
    }

    /// The one waiting model of every receive: `attempt` (a receive that does not wait)
    /// until it yields, waiting for the descriptor to be readable between attempts, until
    /// `timeout` passes (`Ok(None)`). Go's poller, tokio and asyncio run the same loop
    /// with their own wait around [`try_receive`](Self::try_receive). A readable
    /// descriptor whose datagrams were all dropped (forgeries) goes back to waiting.
    pub(super) fn wait_then<T>(
        &self,
        socket: &Socket,
        deadline: Deadline,
        mut attempt: impl FnMut(&Socket) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        // After an empty queue, the next datagram most likely is not there yet: wait
        // first, one system call fewer per message in request/response traffic.
        let mut wait_first = !deadline.zero && self.queue_was_empty.load(Ordering::Relaxed);
        let deadline = deadline.at;
        loop {
            let tried = !std::mem::take(&mut wait_first);
            if tried {
                if let Some(received) = attempt(socket)? {
                    return Ok(Some(received));
                }
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

    /// Where the system allows it, the first part of a wait as one blocking recv (see
    /// [`blocking_part`]): `None` when that did not settle the receive, which then goes
    /// on in [`wait_then`](Self::wait_then).
    fn receive_blocking_first(
        &self,
        socket: &Socket,
        timeout: Timeout,
        buf: &mut [u8],
    ) -> Option<Result<Received>> {
        let wait = blocking_part(timeout).filter(|_| {
            sys::BLOCKING_RECEIVE
                && self.coalesced.is_none()
                && self.sealed.is_none()
                && buf.len() >= self.max_message
        })?;
        let mut current = self.blocking_receiver.try_lock().ok()?;
        let received = self.receive_blocking(socket, wait, buf, &mut current);
        let queue_empty = received.is_none();
        self.queue_was_empty.store(queue_empty, Ordering::Relaxed);
        received
    }

    /// One receive that does not wait, noting whether the queue was empty (see
    /// [`wait_then`](Self::wait_then)); `Ok(None)` when nothing could be delivered.
    pub(super) fn receive_ready(
        &self,
        socket: &Socket,
        buf: &mut [u8],
    ) -> Result<Option<Received>> {
        let attempt = self.try_receive_from(socket, buf);
        // An error (a datagram too large for `buf`) leaves the datagram for the next
        // call, which must not wait for the descriptor first: under GRO or sealing it may
        // be held here, no longer in the kernel's queue.
        let queue_empty = matches!(attempt, Ok(None));
        self.queue_was_empty.store(queue_empty, Ordering::Relaxed);
        match attempt? {
            Some(_) if self.is_closed() => Err(Error::closed("receive")),
            received => Ok(received),
        }
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

    /// How many datagrams the kernel dropped for this socket because its receive buffer
    /// was full (SO_RXQ_OVFL), as of the last datagram received: loss you can see.
    pub fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// One blocking recv under SO_RCVTIMEO for `wait` (zero: for ever), for a buffer that
    /// cannot truncate. `None` when it ends without a datagram (its time is up, a signal,
    /// or someone set O_NONBLOCK on the descriptor): the caller waits in poll for the rest
    /// of its own deadline, which poll keeps precisely.
    pub(super) fn receive_blocking(
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
    pub(super) fn try_receive_from(
        &self,
        socket: &Socket,
        buf: &mut [u8],
    ) -> Result<Option<Received>> {
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
    pub(super) fn receive_now(
        &self,
        socket: &Socket,
        buf: &mut [u8],
    ) -> Result<Option<platform::RecvMeta>> {
        match platform::recv_with_meta(socket, self.group, buf, sys::DONT_WAIT) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(self.receive_error(&e)),
        }
    }

    /// A failed receive, or `Closed` when the group was closed under it (where the
    /// system reports the shutdown as an error, WSAESHUTDOWN on Windows, rather than
    /// as a datagram without a sender).
    pub(super) fn receive_error(&self, err: &std::io::Error) -> Error {
        if self.is_closed() {
            Error::closed("receive")
        } else {
            Error::io("receive failed", err)
        }
    }

    /// Under GRO: hands out the next datagram of the current run, reading a new run
    /// when it is used up. A datagram larger than `buf` stays for the next call.
    pub(super) fn try_receive_coalesced(
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

    /// Turns what recvmsg reported into a `Received`, noting the drop counter.
    pub(super) fn accept(&self, meta: platform::RecvMeta) -> Result<Received> {
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
}

/// When a receive's wait ends, fixed when the call starts: `at` is `None` for no limit,
/// `Some(None)` for one beyond what `Instant` can hold (no limit either).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Option<Option<Instant>>,
    // A timeout of zero: one look at the queue, no wait.
    zero: bool,
}

impl Deadline {
    pub(super) fn after(timeout: Timeout) -> Deadline {
        match timeout {
            Timeout::Never => Deadline {
                at: None,
                zero: false,
            },
            Timeout::After(d) => Deadline {
                at: Some(Instant::now().checked_add(d)),
                zero: d.is_zero(),
            },
        }
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
