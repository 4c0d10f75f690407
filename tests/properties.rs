//! Property-based tests (proptest) over every parser and validator and over the exported
//! C functions with arbitrary inputs. Case counts are proptest's default (256 per
//! property) unless PROPTEST_CASES says otherwise.

mod common;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use multicast::address::{parse_group, parse_group_spec, parse_port, split_zone, Timeout};
use multicast::message::canonical_json;
use multicast::ErrorKind;
use proptest::prelude::*;
use serde_json::Value;

// The C API, linked from this crate's own rlib.
#[repr(C)]
struct McGroup {
    _opaque: [u8; 0],
}
extern "C" {
    fn mc_join(
        group: *const c_char,
        port: i32,
        iface: *const c_char,
        out: *mut *mut McGroup,
    ) -> c_int;
    fn mc_send(g: *mut McGroup, data: *const c_void, len: usize) -> c_int;
    fn mc_send_json(g: *mut McGroup, json: *const c_char) -> c_int;
    fn mc_receive(
        g: *mut McGroup,
        timeout: f64,
        buf: *mut c_void,
        cap: usize,
        out_len: *mut usize,
        src: *mut c_char,
        src_cap: usize,
    ) -> c_int;
    fn mc_free(g: *mut McGroup);
    fn mc_status_str(status: c_int) -> *const c_char;
    fn mc_last_error() -> *const c_char;
}
const MC_OK: c_int = 0;
const MC_TIMEOUT: c_int = 1;
const MC_ERR_INTERNAL: c_int = -9;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".*", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Numbers compared as f64, since Go's format writes 1.0 as 1.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(normalised).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalised(v))).collect())
        }
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn group_parser_agrees_with_std(text in ".{0,40}") {
        match parse_group(&text) {
            Ok(addr) => {
                prop_assert!(addr.is_multicast());
                prop_assert_eq!(Ok(addr), text.parse::<IpAddr>());
            }
            Err(e) => match text.parse::<IpAddr>() {
                Ok(a) => prop_assert!(!a.is_multicast() && e.kind() == ErrorKind::NotMulticast),
                Err(_) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument),
            },
        }
    }

    #[test]
    fn every_multicast_address_parses(octets in (224u8..=239, any::<u8>(), any::<u8>(), any::<u8>())) {
        let addr = Ipv4Addr::new(octets.0, octets.1, octets.2, octets.3);
        prop_assert_eq!(parse_group(&addr.to_string()).unwrap(), addr);
    }

    #[test]
    fn every_ipv6_multicast_address_parses(segments in any::<[u16; 8]>()) {
        let mut segments = segments;
        segments[0] |= 0xff00;
        let addr = Ipv6Addr::from(segments);
        prop_assert_eq!(parse_group(&addr.to_string()).unwrap(), IpAddr::V6(addr));
        let zoned = format!("{addr}%mc0");
        let plain = addr.to_string();
        prop_assert_eq!(split_zone(&zoned), (plain.as_str(), Some("mc0")));
        // Go's host:port spelling, with and without the zone.
        let bracketed = format!("[{addr}]");
        prop_assert_eq!(parse_group_spec(&bracketed).unwrap(), (IpAddr::V6(addr), None));
        let bracketed_zoned = format!("[{zoned}]");
        prop_assert_eq!(parse_group_spec(&bracketed_zoned).unwrap(), (IpAddr::V6(addr), Some("mc0")));
    }

    #[test]
    fn ports(port in any::<i64>()) {
        prop_assert_eq!(parse_port(port).is_ok(), (1..=65535).contains(&port));
    }

    #[test]
    fn timeouts(seconds in any::<f64>()) {
        match Timeout::from_seconds(seconds) {
            Err(_) => prop_assert!(seconds.is_nan()),
            Ok(Timeout::Never) => prop_assert!(!(0.0..=1e18).contains(&seconds)),
            Ok(Timeout::After(d)) => prop_assert!((d.as_secs_f64() - seconds).abs() <= 1e-9 * seconds.max(1.0)),
        }
    }

    #[test]
    fn json_round_trips_sorted_and_stable(value in json_value()) {
        let text = serde_json::to_string_pretty(&value).unwrap();
        match canonical_json(&text) {
            Ok(out) => {
                let back: Value = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(normalised(&back), normalised(&value));
                let again = canonical_json(std::str::from_utf8(&out).unwrap()).unwrap();
                prop_assert_eq!(again, out);
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::MessageTooLarge),
        }
    }

    #[test]
    fn json_parser_never_panics(text in ".{0,200}") {
        if let Err(e) = canonical_json(&text) {
            prop_assert!(matches!(e.kind(), ErrorKind::InvalidJson | ErrorKind::MessageTooLarge));
        }
    }

    #[test]
    fn status_names_never_null(status in any::<c_int>()) {
        // SAFETY: mc_status_str accepts any integer and returns a static string.
        let name = unsafe { CStr::from_ptr(mc_status_str(status)) };
        prop_assert!(name.to_str().unwrap().starts_with("MC_"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn ffi_join_with_arbitrary_input(group in prop::collection::vec(1u8..=255, 0..48),
                                     port in any::<i32>(),
                                     iface in prop::option::of(prop::collection::vec(1u8..=255, 0..24))) {
        common::require_private_netns();
        let group = CString::new(group).unwrap();
        let iface = iface.map(|i| CString::new(i).unwrap());
        let mut out: *mut McGroup = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings and a valid out pointer.
        let status = unsafe {
            mc_join(group.as_ptr(), port, iface.as_ref().map_or(std::ptr::null(), |i| i.as_ptr()), &mut out)
        };
        prop_assert_ne!(status, MC_ERR_INTERNAL);
        if status == MC_OK {
            prop_assert!(!out.is_null());
            // SAFETY: a handle from mc_join, freed once.
            unsafe { mc_free(out) };
        } else {
            prop_assert!(out.is_null());
            // SAFETY: mc_last_error never returns NULL.
            let message = unsafe { CStr::from_ptr(mc_last_error()) };
            prop_assert!(!message.to_bytes().is_empty(), "failure without a message");
        }
    }

    #[test]
    fn ffi_send_and_receive_with_arbitrary_input(json in ".{0,64}",
                                                 data in prop::collection::vec(any::<u8>(), 0..256),
                                                 capacity in 0usize..300,
                                                 source_capacity in 0usize..80,
                                                 timeout in prop_oneof![Just(f64::NAN), Just(0.0), 0.0f64..0.01]) {
        common::require_private_netns();
        let mut g: *mut McGroup = std::ptr::null_mut();
        let port = 20_000 + (common::unique_port() % 500) as i32 + 5_000;
        // SAFETY: valid arguments throughout; every buffer outlives its call.
        unsafe {
            prop_assert_eq!(mc_join(c"239.4.0.3".as_ptr(), port, std::ptr::null(), &mut g), MC_OK);
            let json = CString::new(json.replace('\0', "")).unwrap();
            prop_assert_ne!(mc_send_json(g, json.as_ptr()), MC_ERR_INTERNAL);
            prop_assert_eq!(mc_send(g, data.as_ptr().cast(), data.len()), MC_OK);
            let mut buf = vec![0u8; capacity];
            let mut source = vec![0 as c_char; source_capacity];
            let mut len = 0usize;
            let status = mc_receive(g, timeout, buf.as_mut_ptr().cast(), capacity, &mut len,
                                    source.as_mut_ptr(), source_capacity);
            prop_assert_ne!(status, MC_ERR_INTERNAL);
            if status == MC_OK {
                prop_assert!(len <= capacity);
            }
            if status == MC_TIMEOUT {
                prop_assert_eq!(len, 0);
            }
            mc_free(g);
        }
    }
}
