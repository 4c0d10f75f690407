//! Authenticated groups: sealing sends and opening receives (see `auth`).

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use socket2::Socket;

use super::{Group, Received};
use crate::auth::{self, AuthCounters, GroupKey};
use crate::error::{Error, Result};
use crate::options::JoinOptions;

thread_local! {
    // Where this thread seals its sends: a message plus auth::OVERHEAD (up to 64 KiB),
    // or a batch of them.
    static SEALING: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// What a thread's sealing buffer keeps between sends: a large batch's memory is given
/// back rather than held for the thread's life.
const SEALING_KEPT: usize = 1 << 20;

/// Runs `seal_and_send` with this thread's sealing buffer, kept for its next send (no
/// allocation per message); while the thread exits (its buffer gone), with a new one.
pub(super) fn with_sealing_buffer<T>(seal_and_send: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buffer = SEALING.try_with(std::cell::Cell::take).unwrap_or_default();
    let result = seal_and_send(&mut buffer);
    if buffer.capacity() <= SEALING_KEPT {
        // While the thread exits its buffer is gone, and this one is dropped.
        let _ = SEALING.try_with(|kept| kept.set(buffer));
    }
    result
}

/// How many datagrams one receive attempt reads and drops at most before it returns
/// empty-handed (see `try_receive_sealed`): about 50 us of opening forgeries.
const JUDGED_PER_ATTEMPT: usize = 64;

/// An authenticated group's keys and state (see [`auth`]).
pub(super) struct Sealed {
    pub(super) keys: RwLock<auth::Keyring>,
    pub(super) sender: Mutex<auth::Sender>,
    pub(super) inbox: Mutex<Inbox>,
    pub(super) to: auth::Destination,
}

/// Sealed datagrams are read whole into `scratch` and opened there; a message too
/// large for the caller's buffer waits in `pending`, as an unread datagram would.
pub(super) struct Inbox {
    pub(super) scratch: Vec<u8>,
    pub(super) pending: Option<(Range<usize>, Received)>,
    pub(super) replays: auth::Replays,
    pub(super) counters: AuthCounters,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Sealed {
    pub(super) fn new(
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

    /// The sender's nonces. Hold the guard until what is sealed with it is on the wire:
    /// sequence numbers then reach the network in the order they were taken, so no
    /// concurrent sender's datagram lands more than the replay window behind another's
    /// (receivers would refuse it as replayed). Uncontended, that costs a sender nothing.
    pub(super) fn sender(&self) -> MutexGuard<'_, auth::Sender> {
        self.sender.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seals `message` into `datagram` under the next nonce, reusing its memory.
    pub(super) fn seal(
        &self,
        sender: &mut auth::Sender,
        message: &[u8],
        datagram: &mut Vec<u8>,
    ) -> Result<()> {
        let (sender, seq) = sender.next_nonce()?;
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        auth::seal_into(&keys, self.to, sender, seq, message, datagram);
        Ok(())
    }

    /// Seals each of `messages` under the next nonces, end to end into `datagrams` (see
    /// [`auth::seal_all_into`]).
    pub(super) fn seal_all(
        &self,
        sender: &mut auth::Sender,
        messages: &[&[u8]],
        datagrams: &mut Vec<u8>,
    ) -> Result<()> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        auth::seal_all_into(&keys, self.to, || sender.next_nonce(), messages, datagrams)
    }

    /// Opens the datagram in `inbox.scratch[..len]`: its message's range, or `None`
    /// (counted) when it is not authentic or a replay.
    pub(super) fn open(&self, inbox: &mut Inbox, len: usize) -> Option<Range<usize>> {
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

impl Group {
    /// For an authenticated group: the next authentic message, reading (and dropping,
    /// counted) whatever else is queued before it; `Ok(None)` when nothing is left, or
    /// after [`JUDGED_PER_ATTEMPT`] datagrams were all dropped. That bound lets a flood
    /// of forgeries never hold a receive past its deadline (its waiting loop looks at
    /// the clock between attempts) nor an event loop on one descriptor.
    pub(super) fn try_receive_sealed(
        &self,
        socket: &Socket,
        buf: &mut [u8],
        sealed: &Sealed,
    ) -> Result<Option<Received>> {
        let mut inbox = sealed.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        for judged in 0.. {
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
            // Never mid-way through a GRO run: its rest is here, not in the kernel's
            // queue, and the waiting loop would wait for the descriptor past it.
            if judged >= JUDGED_PER_ATTEMPT && !self.holds_coalesced() {
                break;
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
        Ok(None)
    }

    /// Whether datagrams of a GRO run are held here, already out of the kernel's queue.
    fn holds_coalesced(&self) -> bool {
        self.coalesced
            .as_ref()
            .is_some_and(|c| c.lock().unwrap_or_else(PoisonError::into_inner).remaining > 0)
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
}
