//! Authenticated groups over real sockets in the private namespace: members hear each
//! other, and forged, altered, replayed or foreign-key datagrams are dropped and counted.
//!
//! Each test ends with a genuine "marker" datagram after the bad ones: the socket queue
//! keeps order, so once the marker is received every bad datagram before it has been
//! read and judged, and the counters can be checked without waiting on a clock.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{require_private_netns, unique_port};
use multicast::auth::{self, Destination, Keyring};
use multicast::{AuthCounters, ErrorKind, Group, GroupKey, JoinOptions, Timeout};

const GROUP: &str = "239.1.5.1";
const WAIT: Timeout = Timeout::After(Duration::from_secs(5));

fn key(id: u8) -> GroupKey {
    GroupKey::new(id, &[id.wrapping_mul(37); 32]).unwrap()
}

fn keyed(port: u16, key: GroupKey) -> Group {
    require_private_netns();
    Group::join_with(GROUP, port, &JoinOptions::default().group_key(key)).unwrap()
}

fn plain(port: u16) -> Group {
    require_private_netns();
    Group::join(GROUP, port, "").unwrap()
}

fn next(g: &Group) -> Vec<u8> {
    g.receive_message(WAIT)
        .unwrap()
        .expect("a message within 5 s")
        .data
}

/// The next raw datagram a plain listener hears (a sealed one, as on the wire).
fn wire(listener: &Group) -> Vec<u8> {
    next(listener)
}

#[test]
fn members_hear_each_other_and_the_wire_carries_no_plaintext() {
    let port = unique_port();
    let (a, b, eavesdropper) = (keyed(port, key(1)), keyed(port, key(1)), plain(port));
    a.send(b"meet at noon").unwrap();
    let m = b.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(m.data, b"meet at noon");
    assert_eq!(m.source.port(), a.local_addr().port());
    let raw = wire(&eavesdropper);
    assert_eq!(raw.len(), b"meet at noon".len() + auth::OVERHEAD);
    assert_eq!((raw[0], raw[1]), (auth::WIRE_VERSION, 1));
    assert!(
        !raw.windows(4).any(|w| w == b"meet"),
        "plaintext on the wire"
    );
    assert_eq!(
        next(&a),
        b"meet at noon",
        "loopback: the sender hears itself once"
    );
    assert_eq!(b.auth_counters(), AuthCounters::default());
    assert!(a.is_authenticated() && !eavesdropper.is_authenticated());
}

#[test]
fn unauthenticated_senders_and_other_keys_are_dropped_and_counted() {
    let port = unique_port();
    let (member, outsider, stranger) = (keyed(port, key(1)), plain(port), keyed(port, key(2)));
    let impostor = keyed(port, GroupKey::new(1, &[0xEE; 32]).unwrap());
    outsider.send(b"forged announcement").unwrap();
    outsider.send(b"").unwrap();
    stranger.send(b"sealed under key id 2").unwrap();
    impostor.send(b"key id 1, wrong key").unwrap();
    member.send(b"marker").unwrap();
    assert_eq!(next(&member), b"marker");
    let counted = member.auth_counters();
    assert_eq!(
        (counted.unauthenticated, counted.unknown_key),
        (3, 1),
        "{counted:?}"
    );
    assert_eq!(counted.replayed, 0);
}

#[test]
fn replays_are_dropped_and_counted() {
    let port = unique_port();
    let (sender, member, tap) = (keyed(port, key(1)), keyed(port, key(1)), plain(port));
    sender.send(b"open the door").unwrap();
    assert_eq!(next(&member), b"open the door");
    let recorded = wire(&tap);
    for _ in 0..3 {
        tap.send(&recorded).unwrap();
    }
    sender.send(b"marker").unwrap();
    assert_eq!(next(&member), b"marker");
    assert_eq!(member.auth_counters().replayed, 3);
}

#[test]
fn every_byte_altered_truncated_or_extended_is_refused() {
    let port = unique_port();
    let (sender, member, tap) = (keyed(port, key(1)), keyed(port, key(1)), plain(port));
    sender.send(b"twenty bytes of text").unwrap();
    assert_eq!(next(&member), b"twenty bytes of text");
    let genuine = wire(&tap);
    for i in 0..genuine.len() {
        let mut altered = genuine.clone();
        altered[i] ^= 0x01;
        tap.send(&altered).unwrap();
    }
    tap.send(&genuine[..genuine.len() - 1]).unwrap();
    tap.send(&genuine[..auth::HEADER_LEN]).unwrap();
    tap.send(&[genuine.as_slice(), b"x"].concat()).unwrap();
    sender.send(b"marker").unwrap();
    assert_eq!(next(&member), b"marker");
    let counted = member.auth_counters();
    // Byte 1 is the key id: flipped, it names a key the group does not hold.
    assert_eq!(counted.unknown_key, 1, "{counted:?}");
    assert_eq!(
        counted.unauthenticated,
        genuine.len() as u64 - 1 + 3,
        "{counted:?}"
    );
    assert_eq!(counted.replayed, 0);
}

#[test]
fn a_huge_sequence_jump_is_accepted_once_and_leaves_older_numbers_behind() {
    let port = unique_port();
    let (member, tap) = (keyed(port, key(1)), plain(port));
    let keys = Keyring::new(&key(1), None).unwrap();
    let to = Destination {
        group: GROUP.parse().unwrap(),
        port,
    };
    let sender = 0xABCD;
    for (seq, text) in [
        (5, "five"),
        (u32::MAX, "max"),
        (6, "six"),
        (u32::MAX, "max again"),
    ] {
        tap.send(&auth::seal(&keys, to, sender, seq, text.as_bytes()))
            .unwrap();
    }
    tap.send(&auth::seal(&keys, to, sender + 1, 0, b"marker"))
        .unwrap();
    assert_eq!(next(&member), b"five");
    assert_eq!(next(&member), b"max");
    assert_eq!(next(&member), b"marker");
    assert_eq!(member.auth_counters().replayed, 2);
}

#[test]
fn a_datagram_sealed_for_another_group_or_port_is_refused() {
    let port = unique_port();
    let (member, tap) = (keyed(port, key(1)), plain(port));
    let keys = Keyring::new(&key(1), None).unwrap();
    let other_port = Destination {
        group: GROUP.parse().unwrap(),
        port: port + 1,
    };
    let other_group = Destination {
        group: "239.1.5.2".parse().unwrap(),
        port,
    };
    tap.send(&auth::seal(&keys, other_port, 1, 0, b"moved"))
        .unwrap();
    tap.send(&auth::seal(&keys, other_group, 2, 0, b"moved"))
        .unwrap();
    member.send(b"marker").unwrap();
    assert_eq!(next(&member), b"marker");
    assert_eq!(member.auth_counters().unauthenticated, 2);
}

#[test]
fn rotation_keeps_the_group_talking() {
    let port = unique_port();
    let (a, b) = (keyed(port, key(1)), keyed(port, key(1)));
    b.rotate_key(&key(2), true).unwrap();
    a.send(b"old key").unwrap();
    assert_eq!(next(&b), b"old key");
    a.rotate_key(&key(2), true).unwrap();
    a.send(b"new key").unwrap();
    assert_eq!(next(&b), b"new key");
    b.rotate_key(&key(3), false).unwrap();
    a.send(b"retired key").unwrap();
    b.send(b"marker").unwrap();
    assert_eq!(next(&b), b"marker");
    assert_eq!(b.auth_counters().unknown_key, 1);
    let e = b.rotate_key(&key(3), true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = plain(port).rotate_key(&key(4), true).unwrap_err();
    assert_eq!(
        e.message(),
        "rotate_key failed: the group was joined without a key"
    );
}

#[test]
fn joining_mid_rotation_accepts_both_keys() {
    let port = unique_port();
    let (old, new) = (keyed(port, key(1)), keyed(port, key(2)));
    require_private_netns();
    let options = JoinOptions::default()
        .group_key(key(2))
        .previous_key(key(1));
    let member = Group::join_with(GROUP, port, &options).unwrap();
    old.send(b"old").unwrap();
    new.send(b"new").unwrap();
    assert_eq!(next(&member), b"old");
    assert_eq!(next(&member), b"new");
}

#[test]
fn bad_keys_are_refused_before_any_socket() {
    for len in [0, 16, 31, 33, 64] {
        let e = GroupKey::new(1, &vec![7; len]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.message(),
            format!("a group key must be 32 bytes, not {len}")
        );
    }
    let same_id = JoinOptions::default()
        .group_key(key(1))
        .previous_key(key(1));
    let e = Group::join_with(GROUP, 9, &same_id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let previous_only = JoinOptions::default().previous_key(key(1));
    let e = Group::join_with(GROUP, 9, &previous_only).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let secret = format!("{:?}", JoinOptions::default().group_key(key(5)));
    assert!(
        !secret.contains(&format!("{}", 5u8.wrapping_mul(37))),
        "{secret}"
    );
}

#[test]
fn sizes_buffers_batches_and_gro() {
    let port = unique_port();
    let sender = keyed(port, key(1));
    require_private_netns();
    let gro = Group::join_with(
        GROUP,
        port,
        &JoinOptions::default().group_key(key(1)).gro(true),
    )
    .unwrap();
    let member = keyed(port, key(1));
    assert_eq!(
        sender.max_message_size(),
        multicast::MAX_MESSAGE_SIZE - auth::OVERHEAD
    );
    let too_big = vec![0; sender.max_message_size() + 1];
    assert_eq!(
        sender.send(&too_big).unwrap_err().kind(),
        ErrorKind::MessageTooLarge
    );

    // A message too large for the buffer waits for a larger one, as a datagram would.
    sender.send(&[9; 100]).unwrap();
    let mut small = [0u8; 16];
    let e = member.receive(WAIT, &mut small).unwrap_err();
    assert_eq!(
        (e.kind(), e.needed_len()),
        (ErrorKind::BufferTooSmall, Some(100))
    );
    let mut big = [0u8; 100];
    let got = member.receive(WAIT, &mut big).unwrap().unwrap();
    assert_eq!((got.len, big), (100, [9; 100]));
    assert_eq!(next(&gro), vec![9; 100]);

    let messages: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 200]).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    assert_eq!(sender.send_batch(&refs).unwrap(), 20);
    for receiver in [&member, &gro] {
        let mut got = Vec::new();
        while got.len() < 20 {
            let mut bufs = vec![vec![0u8; 65_535]; 8];
            let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
            let mut received = vec![None; 8];
            let n = receiver
                .receive_batch(WAIT, &mut slices, &mut received)
                .unwrap();
            assert!(n > 0, "batch timed out after {} messages", got.len());
            for (buf, r) in bufs.iter().zip(&received[..n]) {
                got.push(buf[..r.unwrap().len].to_vec());
            }
        }
        assert_eq!(got, messages);
        assert_eq!(receiver.auth_counters(), AuthCounters::default());
    }

    // A batch longer than the 64 datagrams sealed per window, in two sizes (two GSO
    // runs and the window's edge inside the second): all arrive, in order, intact.
    let messages: Vec<Vec<u8>> = (0..70u8)
        .map(|i| vec![i; if i < 30 { 100 } else { 120 }])
        .collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    assert_eq!(sender.send_batch(&refs).unwrap(), 70);
    let mut got = Vec::new();
    let mut buf = [0u8; 200];
    while got.len() < 70 {
        let r = member.receive(WAIT, &mut buf).unwrap();
        let r = r.unwrap_or_else(|| panic!("timed out after {} messages", got.len()));
        got.push(buf[..r.len].to_vec());
    }
    assert_eq!(got, messages);
    assert_eq!(member.auth_counters(), AuthCounters::default());
}

/// A readable descriptor that holds only forgeries: the receive that does not wait drops
/// and counts them and reports nothing, so an event loop goes back to waiting.
#[test]
fn try_receive_drops_forgeries_and_reports_nothing() {
    let port = unique_port();
    let member = keyed(port, key(1));
    let forger = plain(port);
    forger.send(b"forged").unwrap();
    let fd = member.as_raw_fd();
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, live for the call.
    assert_eq!(
        unsafe { libc::poll(&mut poll, 1, 5000) },
        1,
        "never readable"
    );
    let mut buf = [0u8; 100];
    assert_eq!(member.try_receive(&mut buf).unwrap(), None);
    assert_eq!(member.auth_counters().unauthenticated, 1);
    let sender = keyed(port, key(1));
    sender.send(b"genuine").unwrap();
    assert_eq!(next(&member), b"genuine");
}

/// Sends are thread-safe, so several threads sealing on one handle is a supported use;
/// none of their datagrams may be refused as a replay (a thread paused between taking
/// its sequence number and sending used to land more than the window behind).
#[test]
fn concurrent_senders_on_one_handle_lose_nothing_to_the_replay_window() {
    const THREADS: usize = 4;
    const EACH: usize = 50_000;
    let port = unique_port();
    require_private_netns();
    let receiver = Group::join_with(
        GROUP,
        port,
        &JoinOptions::default()
            .group_key(key(1))
            .receive_buffer(8 << 20)
            .loopback(true),
    )
    .unwrap();
    let sender = std::sync::Arc::new(keyed(port, key(1)));
    let counting = std::thread::spawn(move || {
        let mut received = 0usize;
        let mut buf = [0u8; 64];
        // Until a marker: the kernel's drop count as of it covers every datagram before.
        loop {
            let r = receiver
                .receive(WAIT, &mut buf)
                .unwrap()
                .expect("a datagram in 5 s");
            if &buf[..r.len] == b"marker" {
                break;
            }
            received += 1;
        }
        (received, receiver.dropped(), receiver.auth_counters())
    });
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    sender.send(format!("{t}:{i}").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    // Markers until one arrives (the kernel may drop one as it may drop any datagram).
    let mut markers = 0;
    while !counting.is_finished() {
        sender.send(b"marker").unwrap();
        markers += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let (received, dropped, counters) = counting.join().unwrap();
    assert_eq!(
        counters.replayed, 0,
        "authentic datagrams refused as replays: {counters:?}"
    );
    assert_eq!(
        counters.unauthenticated + counters.unknown_key,
        0,
        "{counters:?}"
    );
    if multicast::capabilities().drop_count {
        // The drops counted as of the marker received include any marker dropped before it.
        let accounted = received + dropped as usize;
        assert!(
            (THREADS * EACH..THREADS * EACH + markers).contains(&accounted),
            "received {received} + kernel drops {dropped} != {} sent (and at most {} markers \
             dropped); counters {counters:?}",
            THREADS * EACH,
            markers - 1
        );
    } else {
        // The portable path has no drop count: only a full buffer may have taken some.
        assert!(
            received > 0 && received <= THREADS * EACH,
            "received {received}"
        );
    }
}

/// A flood of forgeries never holds a receive past its deadline: the loop that drops
/// them returns to the clock between bounded batches (it used to drain for as long as
/// forgeries kept coming, which a flood makes for ever).
#[test]
fn a_flood_of_forgeries_does_not_hold_a_receive_past_its_timeout() {
    let port = unique_port();
    let member = keyed(port, key(1));
    let flooder = plain(port);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let batches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flooding = {
        let (stop, batches) = (stop.clone(), batches.clone());
        std::thread::spawn(move || {
            let forgery = [0x01u8; 64]; // the wire version, then garbage: dropped unopened
            let batch = [&forgery[..]; 64];
            // At most 20 s, so that a receive the flood holds fails the test, not hangs.
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < until
            {
                let _ = flooder.send_batch(&batch);
                batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    // Forgeries are queued before the receive starts, and keep coming.
    while batches.load(std::sync::atomic::Ordering::Relaxed) < 16 {
        std::thread::yield_now();
    }
    let mut buf = [0u8; 64];
    let start = std::time::Instant::now();
    let received = member.receive(Timeout::After(Duration::from_millis(100)), &mut buf);
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooding.join().unwrap();
    assert!(matches!(received, Ok(None)), "{received:?}");
    // Generous for a loaded machine; the flood would hold it as long as it lasts.
    assert!(
        took < Duration::from_secs(10),
        "a 100 ms receive took {took:?} under a flood"
    );
    assert!(member.auth_counters().unauthenticated > 64);
}
