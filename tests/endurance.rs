//! Endurance: a million messages through one handle with resident memory stable.

mod common;

use std::time::{Duration, Instant};

use common::{require_private_netns, resident_kib, unique_port};
use multicast::{Group, Timeout};

#[test]
fn a_million_messages_in_flat_memory() {
    require_private_netns();
    const TOTAL: u64 = 1_000_000;
    // Small enough batches that the socket's receive buffer never overflows.
    const BATCH: u64 = 100;
    let g = Group::join("239.4.0.2", unique_port(), "").unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut rss_after_warmup = 0;
    let start = Instant::now();
    for batch in 0..TOTAL / BATCH {
        for i in 0..BATCH {
            g.send(&(batch * BATCH + i).to_le_bytes()).unwrap();
        }
        for i in 0..BATCH {
            let r = g
                .receive(Timeout::After(Duration::from_secs(5)), &mut buf)
                .unwrap()
                .expect("no loss");
            assert_eq!(
                buf[..r.len],
                (batch * BATCH + i).to_le_bytes(),
                "in order, nothing lost"
            );
        }
        if batch == 100 {
            rss_after_warmup = resident_kib();
        }
    }
    let grown = resident_kib().saturating_sub(rss_after_warmup);
    eprintln!(
        "endurance: {TOTAL} messages in {:?}, resident memory grew {grown} KiB",
        start.elapsed()
    );
    assert!(grown < 1024, "resident memory grew by {grown} KiB");
}
