//! Batches: many datagrams per system call (GSO runs, sendmmsg, recvmmsg, GRO runs).

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use socket2::Socket;

use super::sealed::with_sealing_buffer;
use super::{Group, Received};
use crate::address::Timeout;
use crate::auth;
use crate::error::{Error, Result};
use crate::platform;
use crate::sys;

impl Group {
    /// Sends each of `datagrams` as its own datagram, in order, in as few system calls as
    /// the kernel allows: runs of equal-sized datagrams (the last of a run may be
    /// shorter) go out with UDP generic segmentation offload, one call per run of up to
    /// 64; the rest with sendmmsg. Receivers see exactly the datagrams of one-by-one sends.
    ///
    /// Returns how many were sent; fewer than `datagrams.len()` means the kernel stopped
    /// taking them (send the rest again to learn why). An error means none was sent. A
    /// datagram over the size limit fails the whole batch before anything is sent.
    pub fn send_batch(&self, datagrams: &[&[u8]]) -> Result<usize> {
        let guard = self.read_socket("send")?;
        let socket = self.open_socket_or(&guard, "send")?;
        for d in datagrams {
            self.check_size(d.len())?;
        }
        let allowed = self.spend(datagrams.iter().map(|d| d.len()))?;
        let datagrams = &datagrams[..allowed];
        let Some(sealed) = &self.sealed else {
            return self.send_datagrams(socket, datagrams);
        };
        let mut sender = sealed.sender(); // until the batch is sent (see there)
        with_sealing_buffer(|bytes| {
            sealed.seal_all(&mut sender, datagrams, bytes)?;
            self.send_sealed(socket, datagrams, bytes)
        })
    }

    /// Sends the datagrams `seal_all` put end to end in `bytes` (one per message of
    /// `messages`), through a window of slices on the stack: nothing allocated.
    fn send_sealed(&self, socket: &Socket, messages: &[&[u8]], bytes: &[u8]) -> Result<usize> {
        const WINDOW: usize = 64;
        let (mut rest, mut sent) = (bytes, 0);
        for chunk in messages.chunks(WINDOW) {
            let mut on_wire: [&[u8]; WINDOW] = [&[]; WINDOW];
            for (slot, message) in on_wire.iter_mut().zip(chunk) {
                (*slot, rest) = rest.split_at(message.len() + auth::OVERHEAD);
            }
            let n = match self.send_datagrams(socket, &on_wire[..chunk.len()]) {
                Err(_) if sent > 0 => return Ok(sent),
                result => result?,
            };
            sent += n;
            if n < chunk.len() {
                break;
            }
        }
        Ok(sent)
    }

    /// Sends datagrams ready for the wire, GSO runs first (see `send_batch`).
    pub(super) fn send_datagrams(&self, socket: &Socket, datagrams: &[&[u8]]) -> Result<usize> {
        let mut sent = 0;
        while sent < datagrams.len() {
            let rest = &datagrams[sent..];
            let run = self.gso_run(rest);
            if run >= 2 {
                match sys::send_waiting(socket, || {
                    platform::send_gso(socket, &rest[..run], &self.destination)
                }) {
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
            match sys::send_waiting(socket, || {
                platform::sendmmsg(socket, &rest[..stretch], &self.destination)
            }) {
                Ok(0) => return Ok(sent),
                Ok(n) => sent += n,
                Err(e) => return self.batch_result(sent, &e),
            }
        }
        Ok(sent)
    }

    /// How many datagrams from the start of `rest` one GSO send can carry here (1: none).
    pub(super) fn gso_run(&self, rest: &[&[u8]]) -> usize {
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

    pub(super) fn batch_result(&self, sent: usize, err: &std::io::Error) -> Result<usize> {
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
    /// (or fails with [`ErrorKind::BufferTooSmall`](crate::ErrorKind::BufferTooSmall) if it is the first).
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
                None => self.try_receive_from(socket, bufs[filled]),
            };
            match next {
                Ok(Some(r)) => received[filled] = Some(r),
                Ok(None) | Err(_) => break,
            }
            filled += 1;
        }
        Ok(filled)
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
