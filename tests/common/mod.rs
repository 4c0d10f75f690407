//! Shared by the socket tests: refuse to run outside the private network namespace that
//! scripts/netns creates, so a test can never send multicast onto the host's network.

#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

/// Panics (failing the test loudly) unless we are inside scripts/netns.
pub fn require_private_netns() {
    let inside = std::env::var("MC_NETNS").as_deref() == Ok("1");
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let host = std::fs::read_link("/proc/1/ns/net").ok();
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let foreign: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .filter(|name| !(*name == "lo" || name.starts_with("mc") || name.starts_with("br-mc")))
        .collect();
    assert!(
        inside && ours != host && foreign.is_empty(),
        "refusing to open sockets outside a private network namespace \
         (MC_NETNS={inside}, foreign interfaces {foreign:?}); run the tests with `make test` \
         or `scripts/netns -- cargo test`"
    );
}

/// The interface and address scripts/netns set up.
pub fn test_iface() -> String {
    std::env::var("MC_TEST_IFACE").expect("MC_TEST_IFACE from scripts/netns")
}

pub fn test_addr() -> String {
    std::env::var("MC_TEST_ADDR").expect("MC_TEST_ADDR from scripts/netns")
}

/// A port no other test in this process uses, so tests can run in parallel.
pub fn unique_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(20_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The number of open descriptors of this process: only meaningful in a test binary
/// with a single test, since the harness runs a binary's tests in parallel threads.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's resident memory in KiB (as for `open_fds`: one test per binary).
pub fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs `ip` with the words of `args` (inside the namespace, as the tests are); panics
/// with its error output if it fails.
pub fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
