//! The receive side of authenticated groups (multicast::auth): `open` on arbitrary bytes,
//! on genuine datagrams the fuzzer alters, and the replay window on arbitrary sequences.
//! Besides "no panic": nothing but the genuine datagram ever opens, it opens to exactly
//! the message sealed, and no (sender, sequence number) is accepted twice.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use multicast::auth::{self, Destination, GroupKey, Keyring, Rejection, Replays};

const TO: Destination = Destination {
    group: IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)),
    port: 5000,
};

fuzz_target!(
    |input: (Vec<u8>, Vec<u8>, Vec<(u16, u8)>, Vec<(u8, u32)>)| {
        let (raw, message, edits, arrivals) = input;
        let keys = Keyring::new(&GroupKey::new(1, &[7; 32]).unwrap(), None).unwrap();

        // Arbitrary bytes: never authentic (a forgery would need the key).
        let mut forged = raw.clone();
        if let Ok(opened) = auth::open(&keys, TO, &mut forged) {
            panic!("{} arbitrary bytes opened as {opened:?}", raw.len());
        }

        // A genuine datagram altered by the fuzzer opens only if no byte changed.
        let genuine = auth::seal(&keys, TO, 42, 9, &message);
        let mut altered = genuine.clone();
        for &(at, xor) in &edits {
            if let Some(byte) = altered.get_mut(usize::from(at)) {
                *byte ^= xor;
            }
        }
        if edits.len() % 3 == 1 {
            altered.truncate(usize::from(edits[0].0));
        } else if edits.len() % 3 == 2 {
            altered.push(edits[0].1);
        }
        let unchanged = altered == genuine;
        match auth::open(&keys, TO, &mut altered) {
            Ok(opened) => {
                assert!(unchanged, "an altered datagram opened");
                assert_eq!((opened.sender, opened.seq), (42, 9));
                assert_eq!(&altered[opened.message], &message[..]);
            }
            Err(why) => {
                assert!(!unchanged, "the genuine datagram was refused: {why:?}");
                assert_ne!(why, Rejection::Replayed, "open never judges replays");
            }
        }

        // The replay window: each (sender, seq) at most once.
        let mut replays = Replays::default();
        let mut accepted = HashSet::new();
        for &(sender, seq) in &arrivals {
            if replays.accept(u64::from(sender), seq) {
                assert!(
                    accepted.insert((sender, seq)),
                    "({sender}, {seq}) accepted twice"
                );
            }
        }
    }
);
