//! What keeps a relay bounded: token buckets (per group, per peer) and a fixed-size
//! memory of what it sent, by which it knows its own datagrams when they come back.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket: `rate` datagrams per second, bursts of up to one second's worth.
pub struct Bucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    pub fn new(rate: f64) -> Bucket {
        Bucket {
            rate,
            tokens: rate.max(1.0),
            refilled: Instant::now(),
        }
    }

    /// Whether no token was asked for in `time`.
    pub fn idle_for(&self, time: std::time::Duration) -> bool {
        self.refilled.elapsed() >= time
    }

    /// Takes a token if there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate.max(1.0));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A link-layer (MAC) address as a tap reads it; empty on links without one.
pub type LinkAddress = [u8; 8];

/// Where a datagram came from when it reached this relay through its site link (no
/// link-layer address has these bytes).
pub const FROM_SITE: LinkAddress = [0xff; 8];

/// Fingerprints of the datagrams this relay sent in its last [`SENT_MEMORY`] sends, each
/// with the link-layer address it had arrived from. The same datagram arriving again
/// within [`LOOP_WINDOW`] from another link-layer address is a copy another relay passed
/// back: relaying it again would loop. The same datagram from the same address is a
/// sender repeating itself (SSDP sends each announcement several times), and goes on.
pub struct SentMemory {
    ring: Vec<u64>,
    next: usize,
    sent: HashMap<u64, Sent>,
    /// Keys drawn per process, so no sender can choose payloads that collide.
    hasher: RandomState,
}

struct Sent {
    /// Ring slots holding this fingerprint.
    slots: u32,
    from: LinkAddress,
    at: Instant,
}

/// How many sends the memory holds.
pub const SENT_MEMORY: usize = 4096;
/// How long a copy may take to come back through another relay and still be known.
pub const LOOP_WINDOW: Duration = Duration::from_secs(2);

impl SentMemory {
    pub fn new() -> SentMemory {
        SentMemory {
            ring: vec![0; SENT_MEMORY],
            next: 0,
            sent: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    pub fn fingerprint(&self, source: IpAddr, group: IpAddr, udp: &[u8]) -> u64 {
        // Never 0, which marks an empty slot of the ring.
        self.hasher.hash_one((source, group, udp)) | 1
    }

    /// Records a send of the datagram `fingerprint`, which had arrived from `from`.
    pub fn remember(&mut self, fingerprint: u64, from: LinkAddress) {
        let old = std::mem::replace(&mut self.ring[self.next], fingerprint);
        self.next = (self.next + 1) % SENT_MEMORY;
        if let Some(entry) = self.sent.get_mut(&old) {
            entry.slots -= 1;
            if entry.slots == 0 {
                self.sent.remove(&old);
            }
        }
        let entry = self.sent.entry(fingerprint).or_insert(Sent {
            slots: 0,
            from,
            at: Instant::now(),
        });
        entry.slots += 1;
        entry.from = from;
        entry.at = Instant::now();
    }

    /// Whether the datagram `fingerprint` arriving from `from` is a copy of one this
    /// relay sent, coming back.
    pub fn is_loop(&self, fingerprint: u64, from: LinkAddress) -> bool {
        self.sent
            .get(&fingerprint)
            .is_some_and(|sent| sent.from != from && sent.at.elapsed() < LOOP_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let mut b = Bucket::new(10.0);
        let taken = (0..100).filter(|_| b.take()).count();
        assert!((10..=11).contains(&taken), "{taken}");
    }

    #[test]
    fn a_copy_from_elsewhere_is_a_loop_a_repeat_is_not() {
        let mut m = SentMemory::new();
        let (s, g) = ("10.0.0.1".parse().unwrap(), "239.1.1.1".parse().unwrap());
        let (sender, other_relay) = ([1; 8], [2; 8]);
        let first = m.fingerprint(s, g, b"first");
        m.remember(first, sender);
        assert!(m.is_loop(first, other_relay));
        assert!(!m.is_loop(first, sender), "the sender repeating itself");
        assert!(!m.is_loop(m.fingerprint(s, g, b"other"), other_relay));
        for i in 0..SENT_MEMORY as u32 {
            m.remember(m.fingerprint(s, g, &i.to_be_bytes()), sender);
        }
        assert!(
            !m.is_loop(first, other_relay),
            "forgotten after SENT_MEMORY sends"
        );
        assert!(m.sent.len() <= SENT_MEMORY);
    }
}
