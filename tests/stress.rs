//! Concurrency stress: many senders and receivers on one handle, closed at random
//! moments, hundreds of rounds, under a watchdog. Every blocked receiver must return
//! Closed, and descriptors and memory must be flat afterwards.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{open_fds, require_private_netns, resident_kib, unique_port};
use multicast::{ErrorKind, Group, Timeout};

/// A deterministic xorshift, so a failing round can be replayed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn watchdog(limit: Duration, done: Arc<AtomicBool>) {
    thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("watchdog: stress test still running after {limit:?}: deadlock");
        std::process::abort();
    });
}

fn one_round(port: u16, close_after: Duration) {
    let group = Arc::new(Group::join("239.4.0.1", port, "").unwrap());
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let g = group.clone();
            thread::spawn(move || loop {
                match g.send(&[i; 64]) {
                    Ok(()) => thread::yield_now(),
                    Err(e) => return e.kind(),
                }
            })
        })
        .collect();
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let g = group.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 128];
                loop {
                    match g.receive(Timeout::Never, &mut buf) {
                        Ok(Some(r)) => assert_eq!(r.len, 64),
                        Ok(None) => panic!("no timeout was asked for"),
                        Err(e) => return e.kind(),
                    }
                }
            })
        })
        .collect();
    thread::sleep(close_after);
    group.close().unwrap();
    for s in senders {
        assert_eq!(s.join().unwrap(), ErrorKind::Closed);
    }
    for r in receivers {
        assert_eq!(r.join().unwrap(), ErrorKind::Closed);
    }
}

#[test]
fn random_closes_under_load() {
    require_private_netns();
    let done = Arc::new(AtomicBool::new(false));
    watchdog(Duration::from_secs(120), done.clone());
    let port = unique_port();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    // Warm up allocator pools and thread stacks before taking the baseline.
    for _ in 0..20 {
        one_round(port, Duration::from_micros(next_random(&mut seed) % 3000));
    }
    let (fds, rss) = (open_fds(), resident_kib());
    for _ in 0..300 {
        one_round(port, Duration::from_micros(next_random(&mut seed) % 3000));
    }
    done.store(true, Ordering::SeqCst);
    assert_eq!(open_fds(), fds, "descriptors leaked");
    let grown = resident_kib().saturating_sub(rss);
    assert!(
        grown < 4096,
        "resident memory grew by {grown} KiB over 300 rounds"
    );
}
