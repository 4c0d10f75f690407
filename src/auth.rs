//! Authenticated groups: every datagram sealed with ChaCha20-Poly1305 under a key all
//! members share, so a host without the key can neither forge, alter, replay nor read
//! what the group says. docs/authentication.md specifies the wire format for other
//! implementations; this module is that specification in code.
//!
//! ```text
//! offset  size  field
//! 0       1     version: 1
//! 1       1     key id (which of the group's keys sealed it; rotation)
//! 2       8     sender id, big-endian: random per handle, new when seq would wrap
//! 10      4     sequence number, big-endian: 0, 1, 2, ... per sender id
//! 14      n     ciphertext of the n-byte message
//! 14+n    16    Poly1305 tag
//! nonce = bytes 2..14 (sender id || seq); AAD = bytes 0..14 || group address octets
//! (4 or 16) || port, big-endian (so a datagram cannot be moved to another group or port)
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, ErrorKind, Result};

mod aead;
use aead::Cipher;

/// Bytes in a group key.
pub const KEY_LEN: usize = 32;
/// Bytes of header in front of every sealed datagram.
pub const HEADER_LEN: usize = 14;
/// Bytes of authentication tag after it.
pub const TAG_LEN: usize = 16;
/// What sealing adds to each message: a sealed group's messages are this much shorter
/// than a plain group's limit.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The first byte of every datagram of this format.
pub const WIRE_VERSION: u8 = 1;
/// How far behind a sender's newest sequence number a datagram may arrive (reordered)
/// and still be accepted once.
pub const REPLAY_WINDOW: u32 = 128;
/// How many senders a receiver tracks; past it, the one heard from least recently is
/// forgotten (see docs/authentication.md, "Replays").
pub const MAX_SENDERS: usize = 4096;

/// A group key and its id. The bytes live on the heap from the first copy (so moving a
/// key never leaves a copy behind), are wiped when it is dropped, and never appear in
/// `Debug` output or error messages.
#[derive(PartialEq, Eq)]
pub struct GroupKey {
    id: u8,
    bytes: Box<[u8; KEY_LEN]>,
}

impl GroupKey {
    /// A key from its 32 bytes, copied straight to the heap; any other length is
    /// `InvalidArgument`.
    pub fn new(id: u8, bytes: &[u8]) -> Result<GroupKey> {
        if bytes.len() != KEY_LEN {
            return Err(Error::invalid(format!(
                "a group key must be {KEY_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        let key = GroupKey::zeroed(id);
        Ok(key.filled_from(bytes))
    }

    /// A new random key from the operating system's generator, drawn onto the heap.
    pub fn generate(id: u8) -> Result<GroupKey> {
        let mut key = GroupKey::zeroed(id);
        aead::fill_random(&mut key.bytes[..])
            .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a key: {e}")))?;
        Ok(key)
    }

    fn zeroed(id: u8) -> GroupKey {
        GroupKey {
            id,
            bytes: Box::new([0; KEY_LEN]),
        }
    }

    fn filled_from(mut self, bytes: &[u8]) -> GroupKey {
        self.bytes.copy_from_slice(bytes);
        self
    }

    /// The key id carried in each datagram it seals.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The key's bytes, for handing it to another member.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The cipher for this key: on the heap from the start, wiped when dropped (see
    /// [`aead`]).
    fn cipher(&self) -> Cipher {
        Cipher::new(&self.bytes)
    }
}

impl Clone for GroupKey {
    fn clone(&self) -> GroupKey {
        GroupKey::zeroed(self.id).filled_from(&self.bytes[..])
    }
}

impl Drop for GroupKey {
    fn drop(&mut self) {
        self.bytes.as_mut_slice().zeroize();
    }
}

impl ZeroizeOnDrop for GroupKey {}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys a group seals with (the current one) and accepts (it, and during a
/// rotation the previous one). The ciphers wipe their keys on drop.
pub struct Keyring {
    current: (u8, Cipher),
    previous: Option<(u8, Cipher)>,
}

impl Keyring {
    /// Seals with `current`; accepts `current` and `previous`.
    pub fn new(current: &GroupKey, previous: Option<&GroupKey>) -> Result<Keyring> {
        if previous.is_some_and(|p| p.id == current.id) {
            return Err(Error::invalid(format!(
                "the previous key has the same id ({}) as the current one; a new key needs a new id",
                current.id
            )));
        }
        Ok(Keyring {
            current: (current.id, current.cipher()),
            previous: previous.map(|p| (p.id, p.cipher())),
        })
    }

    /// `key` becomes the sealing key; the old current one stays accepted if
    /// `keep_previous`, and the old previous one is forgotten either way.
    pub fn rotate(&mut self, key: &GroupKey, keep_previous: bool) -> Result<()> {
        if key.id == self.current.0 {
            return Err(Error::invalid(format!(
                "key id {} is the current key's; a new key needs a new id",
                key.id
            )));
        }
        let old = std::mem::replace(&mut self.current, (key.id, key.cipher()));
        self.previous = keep_previous.then_some(old);
        Ok(())
    }

    fn accepting(&self, id: u8) -> Option<&Cipher> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, cipher)| cipher)
    }
}

/// Where a datagram is addressed, bound into every tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    /// The group address.
    pub group: IpAddr,
    /// The group port.
    pub port: u16,
}

impl Destination {
    /// The associated data of a datagram with this header: header, group, port.
    fn aad(&self, header: &[u8]) -> Aad {
        let mut bytes = [0u8; HEADER_LEN + 18];
        bytes[..HEADER_LEN].copy_from_slice(header);
        let group_len = match self.group {
            IpAddr::V4(a) => copy_at(&mut bytes, HEADER_LEN, &a.octets()),
            IpAddr::V6(a) => copy_at(&mut bytes, HEADER_LEN, &a.octets()),
        };
        let len = HEADER_LEN + group_len;
        copy_at(&mut bytes, len, &self.port.to_be_bytes());
        Aad {
            bytes,
            len: len + 2,
        }
    }
}

/// Associated data on the stack: sealing and opening allocate nothing.
struct Aad {
    bytes: [u8; HEADER_LEN + 18],
    len: usize,
}

impl Aad {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn copy_at(into: &mut [u8], at: usize, from: &[u8]) -> usize {
    into[at..at + from.len()].copy_from_slice(from);
    from.len()
}

/// Who sealed a datagram and where its message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender id of the header.
    pub sender: u64,
    /// The sequence number of the header.
    pub seq: u32,
    /// The message: this range of the datagram, decrypted in place.
    pub message: Range<usize>,
}

/// Why a datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Shorter than header and tag, another format version, or a tag that does not
    /// verify: not sealed by a member, or altered on the way.
    Unauthenticated,
    /// Sealed under a key id this group does not hold (yet, or any more).
    UnknownKey,
    /// Authentic, but already delivered or too far behind its sender's newest.
    Replayed,
}

/// Seals `message` as datagram `seq` of `sender`, under the keyring's current key.
pub fn seal(keys: &Keyring, to: Destination, sender: u64, seq: u32, message: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(message.len() + OVERHEAD);
    seal_into(keys, to, sender, seq, message, &mut datagram);
    datagram
}

/// [`seal`] into `datagram` (cleared first), reusing its memory.
pub fn seal_into(
    keys: &Keyring,
    to: Destination,
    sender: u64,
    seq: u32,
    message: &[u8],
    datagram: &mut Vec<u8>,
) {
    datagram.clear();
    aead::leaving_no_trace(|| seal_appended(keys, to, sender, seq, message, datagram));
}

/// Seals each of `messages` under the next nonce `next_nonce` gives, end to end into
/// `datagrams` (cleared first): datagram i is `messages[i].len() + OVERHEAD` bytes long.
/// A batch's worth with one stack overwrite.
pub fn seal_all_into(
    keys: &Keyring,
    to: Destination,
    mut next_nonce: impl FnMut() -> Result<(u64, u32)>,
    messages: &[&[u8]],
    datagrams: &mut Vec<u8>,
) -> Result<()> {
    datagrams.clear();
    aead::leaving_no_trace(|| {
        for message in messages {
            let (sender, seq) = next_nonce()?;
            seal_appended(keys, to, sender, seq, message, datagrams);
        }
        Ok(())
    })
}

/// Appends `message` sealed as datagram `seq` of `sender` to `datagram`.
fn seal_appended(
    keys: &Keyring,
    to: Destination,
    sender: u64,
    seq: u32,
    message: &[u8],
    datagram: &mut Vec<u8>,
) {
    let start = datagram.len();
    datagram.push(WIRE_VERSION);
    datagram.push(keys.current.0);
    datagram.extend_from_slice(&sender.to_be_bytes());
    datagram.extend_from_slice(&seq.to_be_bytes());
    datagram.extend_from_slice(message);
    let (header, body) = datagram[start..].split_at_mut(HEADER_LEN);
    let tag = keys
        .current
        .1
        .seal(nonce_of(header), to.aad(header).as_slice(), body);
    datagram.extend_from_slice(&tag);
}

/// Verifies and decrypts `datagram` in place. A datagram that does not verify leaves
/// no plaintext behind (its bytes as they were, or zeroed); replays are the caller's to
/// check (see [`Replays`]).
pub fn open(
    keys: &Keyring,
    to: Destination,
    datagram: &mut [u8],
) -> std::result::Result<Opened, Rejection> {
    aead::leaving_no_trace(|| open_datagram(keys, to, datagram))
}

fn open_datagram(
    keys: &Keyring,
    to: Destination,
    datagram: &mut [u8],
) -> std::result::Result<Opened, Rejection> {
    if datagram.len() < OVERHEAD || datagram[0] != WIRE_VERSION {
        return Err(Rejection::Unauthenticated);
    }
    let cipher = keys.accepting(datagram[1]).ok_or(Rejection::UnknownKey)?;
    let (header, rest) = datagram.split_at_mut(HEADER_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    let tag: &[u8; TAG_LEN] = (&*tag).try_into().expect("TAG_LEN bytes");
    cipher
        .open(nonce_of(header), to.aad(header).as_slice(), body, tag)
        .map_err(|_| Rejection::Unauthenticated)?;
    let sender = u64::from_be_bytes(header[2..10].try_into().expect("8 bytes"));
    let seq = u32::from_be_bytes(header[10..14].try_into().expect("4 bytes"));
    Ok(Opened {
        sender,
        seq,
        message: HEADER_LEN..datagram.len() - TAG_LEN,
    })
}

/// A sealing handle's identity: a random sender id and its next sequence number. A new
/// id is drawn before the sequence would wrap, so no nonce repeats under one key.
#[derive(Debug)]
pub struct Sender {
    id: u64,
    next: u32,
}

impl Sender {
    /// A sender with a random id.
    pub fn new() -> Result<Sender> {
        Ok(Sender {
            id: random_id()?,
            next: 0,
        })
    }

    /// The sender id and sequence number for the next datagram.
    pub fn next_nonce(&mut self) -> Result<(u64, u32)> {
        if self.next == u32::MAX {
            *self = Sender::new()?;
        }
        let seq = self.next;
        self.next += 1;
        Ok((self.id, seq))
    }
}

/// A header's nonce: its sender id and sequence number.
fn nonce_of(header: &[u8]) -> &[u8; aead::NONCE_LEN] {
    header[2..HEADER_LEN]
        .try_into()
        .expect("a header holds a nonce")
}

fn random_id() -> Result<u64> {
    let mut bytes = [0u8; 8];
    aead::fill_random(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a sender id: {e}")))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The replay window of every sender heard: each sequence number is accepted once,
/// and none more than [`REPLAY_WINDOW`] behind the newest.
#[derive(Debug, Default)]
pub struct Replays {
    senders: HashMap<u64, Window>,
    heard: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    newest: u32,
    // Bit i: newest - i has been accepted.
    seen: u128,
    last_heard: u64,
}

impl Replays {
    /// Accepts `seq` from `sender` (recording it) unless it was accepted before or is
    /// too old. Call it only for authentic datagrams, so forgeries cannot move a window.
    pub fn accept(&mut self, sender: u64, seq: u32) -> bool {
        self.heard += 1;
        let heard = self.heard;
        if !self.senders.contains_key(&sender) && self.senders.len() >= MAX_SENDERS {
            self.forget_quietest();
        }
        let window = self.senders.entry(sender).or_insert(Window {
            newest: seq,
            seen: 0,
            last_heard: heard,
        });
        window.last_heard = heard;
        if seq > window.newest {
            let ahead = seq - window.newest;
            window.seen = if ahead >= REPLAY_WINDOW {
                0
            } else {
                window.seen << ahead
            };
            window.newest = seq;
        }
        let behind = window.newest - seq;
        if behind >= REPLAY_WINDOW || window.seen & (1u128 << behind) != 0 {
            return false;
        }
        window.seen |= 1u128 << behind;
        true
    }

    fn forget_quietest(&mut self) {
        if let Some(&quietest) = self
            .senders
            .iter()
            .min_by_key(|(_, w)| w.last_heard)
            .map(|(id, _)| id)
        {
            self.senders.remove(&quietest);
        }
    }
}

/// Counts of datagrams a sealed group dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthCounters {
    /// Malformed, another version, forged or altered: [`Rejection::Unauthenticated`].
    pub unauthenticated: u64,
    /// Sealed under a key id the group does not hold.
    pub unknown_key: u64,
    /// Authentic but replayed, or too far behind its sender.
    pub replayed: u64,
}

impl AuthCounters {
    pub(crate) fn count(&mut self, why: Rejection) {
        let counter = match why {
            Rejection::Unauthenticated => &mut self.unauthenticated,
            Rejection::UnknownKey => &mut self.unknown_key,
            Rejection::Replayed => &mut self.replayed,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: Destination = Destination {
        group: IpAddr::V4(std::net::Ipv4Addr::new(239, 1, 2, 3)),
        port: 5000,
    };

    fn key(id: u8) -> GroupKey {
        GroupKey::new(id, &[id; KEY_LEN]).unwrap()
    }

    #[test]
    fn round_trip_and_layout() {
        let keys = Keyring::new(&key(7), None).unwrap();
        let mut d = seal(&keys, TO, 0x0102_0304_0506_0708, 9, b"hello");
        assert_eq!(d.len(), 5 + OVERHEAD);
        assert_eq!(&d[..14], &[1, 7, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9]);
        assert_ne!(&d[14..19], b"hello");
        let opened = open(&keys, TO, &mut d).unwrap();
        assert_eq!((opened.sender, opened.seq), (0x0102_0304_0506_0708, 9));
        assert_eq!(&d[opened.message], b"hello");
    }

    #[test]
    fn every_flipped_bit_truncation_and_extension_is_refused() {
        let keys = Keyring::new(&key(1), None).unwrap();
        let sealed = seal(&keys, TO, 5, 0, b"sixteen bytes...");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut d = sealed.clone();
                d[i] ^= 1 << bit;
                let why = open(&keys, TO, &mut d).unwrap_err();
                let expected = if i == 1 {
                    Rejection::UnknownKey
                } else {
                    Rejection::Unauthenticated
                };
                assert_eq!(why, expected, "byte {i} bit {bit}");
            }
        }
        for len in 0..sealed.len() {
            let mut d = sealed[..len].to_vec();
            assert_eq!(open(&keys, TO, &mut d), Err(Rejection::Unauthenticated));
        }
        let mut d = sealed.clone();
        d.push(0);
        assert_eq!(open(&keys, TO, &mut d), Err(Rejection::Unauthenticated));
    }

    #[test]
    fn bound_to_group_and_port() {
        let keys = Keyring::new(&key(1), None).unwrap();
        let sealed = seal(&keys, TO, 5, 0, b"x");
        let other_port = Destination { port: 5001, ..TO };
        assert!(open(&keys, other_port, &mut sealed.clone()).is_err());
        let other_group = Destination {
            group: "239.1.2.4".parse().unwrap(),
            ..TO
        };
        assert!(open(&keys, other_group, &mut sealed.clone()).is_err());
    }

    #[test]
    fn rotation_accepts_two_keys() {
        let mut receiver = Keyring::new(&key(1), None).unwrap();
        let old_sender = Keyring::new(&key(1), None).unwrap();
        let new_sender = Keyring::new(&key(2), None).unwrap();
        receiver.rotate(&key(2), true).unwrap();
        assert!(open(&receiver, TO, &mut seal(&old_sender, TO, 1, 0, b"a")).is_ok());
        assert!(open(&receiver, TO, &mut seal(&new_sender, TO, 1, 0, b"a")).is_ok());
        receiver.rotate(&key(3), false).unwrap();
        assert_eq!(
            open(&receiver, TO, &mut seal(&new_sender, TO, 1, 0, b"a")),
            Err(Rejection::UnknownKey)
        );
        assert!(receiver.rotate(&key(3), true).is_err());
        assert!(Keyring::new(&key(4), Some(&key(4))).is_err());
    }

    #[test]
    fn same_id_other_key_is_refused_as_forged() {
        let receiver = Keyring::new(&key(1), None).unwrap();
        let impostor = Keyring::new(&GroupKey::new(1, &[9; KEY_LEN]).unwrap(), None).unwrap();
        assert_eq!(
            open(&receiver, TO, &mut seal(&impostor, TO, 1, 0, b"a")),
            Err(Rejection::Unauthenticated)
        );
    }

    #[test]
    fn replay_window() {
        let mut r = Replays::default();
        assert!(r.accept(1, 10));
        assert!(!r.accept(1, 10), "duplicate");
        assert!(r.accept(1, 12));
        assert!(r.accept(1, 11), "reordered within the window");
        assert!(!r.accept(1, 11));
        assert!(r.accept(2, 10), "another sender has its own window");
        assert!(r.accept(1, 10 + REPLAY_WINDOW + 5));
        assert!(!r.accept(1, 12), "too far behind");
        assert!(r.accept(1, u32::MAX), "a huge jump is accepted once");
        assert!(!r.accept(1, u32::MAX));
        assert!(
            !r.accept(1, 10 + REPLAY_WINDOW + 6),
            "and leaves older ones behind"
        );
    }

    #[test]
    fn sender_table_is_bounded() {
        let mut r = Replays::default();
        for sender in 0..(MAX_SENDERS as u64 + 10) {
            assert!(r.accept(sender, 0));
        }
        assert_eq!(r.senders.len(), MAX_SENDERS);
        assert!(
            !r.accept(MAX_SENDERS as u64 + 9, 0),
            "recent senders are kept"
        );
    }

    #[test]
    fn sender_draws_a_new_id_before_wrapping() {
        let mut s = Sender::new().unwrap();
        let first = s.id;
        s.next = u32::MAX - 1;
        assert_eq!(s.next_nonce().unwrap(), (first, u32::MAX - 1));
        let (id, seq) = s.next_nonce().unwrap();
        assert_eq!(seq, 0);
        assert_ne!(id, first);
    }

    #[test]
    fn keys_never_show() {
        let k = GroupKey::new(3, &[0xAB; KEY_LEN]).unwrap();
        let shown = format!("{k:?}");
        assert!(
            !shown.contains("171") && !shown.to_lowercase().contains("ab,"),
            "{shown}"
        );
        let e = GroupKey::new(3, &[0xAB; 16]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.message(), "a group key must be 32 bytes, not 16");
    }
}
