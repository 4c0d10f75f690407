//! The core's parsers and validators on arbitrary input: group addresses, ports,
//! interface names, timeouts and JSON. Besides "no panic", each result is checked
//! against what the parser promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multicast::{address, interface, message, ErrorKind, Timeout};

fuzz_target!(|input: (&str, i64, f64, &str)| {
    let (text, port, seconds, json) = input;

    if let Ok(group) = address::parse_group(text) {
        assert!(group.is_multicast(), "{text:?} accepted as {group}");
    }
    match address::parse_group_spec(text) {
        Ok((group, zone)) => {
            assert!(group.is_multicast(), "{text:?} accepted as {group}");
            if let Some(zone) = zone {
                assert!(
                    group.is_ipv6() && !zone.is_empty(),
                    "{text:?}: zone {zone:?}"
                );
            }
            assert_eq!(text.trim(), text, "{text:?}: whitespace accepted");
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidArgument | ErrorKind::NotMulticast
            ),
            "{text:?}: {e}"
        ),
    }

    match address::parse_port(port) {
        Ok(p) => assert!(p != 0 && i64::from(p) == port),
        Err(e) => {
            assert!(!(1..=65535).contains(&port));
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
    }

    match Timeout::from_seconds(seconds) {
        Ok(Timeout::After(d)) => assert!(seconds >= 0.0 && d.as_secs_f64().is_finite()),
        Ok(Timeout::Never) => assert!(seconds < 0.0 || seconds >= 1.0e19),
        Err(_) => assert!(seconds.is_nan()),
    }

    // Resolving reads the interfaces visible here; an error must say what was wrong.
    if let Err(e) = interface::resolve(text) {
        assert!(!e.message().is_empty());
    }

    // Canonical JSON is valid JSON and a fixed point: encoding it again changes nothing.
    if let Ok(encoded) = message::canonical_json(json) {
        let again = message::canonical_json(std::str::from_utf8(&encoded).unwrap())
            .expect("canonical JSON must parse");
        assert_eq!(encoded, again, "not a fixed point for {json:?}");
    }
});
