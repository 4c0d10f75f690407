//! What keeps a relay bounded: token buckets (per group, per peer) and a fixed-size
//! memory of what it sent, by which it knows its own datagrams when they come back.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

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

/// Fingerprints of the datagrams this relay sent in its last [`SENT_MEMORY`] sends. A
/// datagram arriving with one of them is this relay's own (or a copy another relay
/// passed back): relaying it again would loop.
pub struct SentMemory {
    ring: Vec<u64>,
    next: usize,
    set: std::collections::HashMap<u64, u32>,
    /// Keys drawn per process, so no sender can choose payloads that collide.
    hasher: RandomState,
}

/// How many sends the memory holds: at 100,000 datagrams/s, the last 40 ms or so; a
/// copy coming back through a LAN takes well under a millisecond.
pub const SENT_MEMORY: usize = 4096;

impl SentMemory {
    pub fn new() -> SentMemory {
        SentMemory {
            ring: vec![0; SENT_MEMORY],
            next: 0,
            set: Default::default(),
            hasher: RandomState::new(),
        }
    }

    pub fn fingerprint(&self, source: IpAddr, group: IpAddr, udp: &[u8]) -> u64 {
        // Never 0, which marks an empty slot of the ring.
        self.hasher.hash_one((source, group, udp)) | 1
    }

    pub fn remember(&mut self, fingerprint: u64) {
        let old = std::mem::replace(&mut self.ring[self.next], fingerprint);
        self.next = (self.next + 1) % SENT_MEMORY;
        if old != 0 {
            if let Some(n) = self.set.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.set.remove(&old);
                }
            }
        }
        *self.set.entry(fingerprint).or_insert(0) += 1;
    }

    pub fn contains(&self, fingerprint: u64) -> bool {
        self.set.contains_key(&fingerprint)
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
    fn the_memory_forgets_the_oldest() {
        let mut m = SentMemory::new();
        let (s, g) = ("10.0.0.1".parse().unwrap(), "239.1.1.1".parse().unwrap());
        let first = m.fingerprint(s, g, b"first");
        m.remember(first);
        assert!(m.contains(first));
        assert!(!m.contains(m.fingerprint(s, g, b"other")));
        for i in 0..SENT_MEMORY as u32 {
            m.remember(m.fingerprint(s, g, &i.to_be_bytes()));
        }
        assert!(!m.contains(first));
        assert!(m.set.len() <= SENT_MEMORY);
    }
}
