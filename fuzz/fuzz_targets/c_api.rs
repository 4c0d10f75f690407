//! The exported C functions on arbitrary arguments, called as a C program would:
//! strings with any bytes (cut at the first NUL), any port, any timeout, any data.
//! A join that succeeds opens a real socket, so run this inside `scripts/netns`.
#![no_main]

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use libfuzzer_sys::fuzz_target;
// Links the crate: the exports below are its symbols.
extern crate multicast;

/// mc_join_options, layout version 3.
#[repr(C)]
struct JoinOptions {
    version: u32,
    interface_name: *const c_char,
    interface_index: u32,
    ttl: i32,
    loopback: bool,
    receive_buffer_size: usize,
    gro: bool,
    packet_info: bool,
    source_address: *const c_char,
    rejoin: bool,
    reannounce_seconds: u32,
    max_datagrams_per_second: u32,
    max_bytes_per_second: u32,
    group_key: *const u8,
    group_key_len: usize,
    previous_key: *const u8,
    previous_key_len: usize,
    group_key_id: u8,
    previous_key_id: u8,
}

// Mirrors the C layouts (see src/ffi/options.rs): version 1 is the first 56 bytes,
// version 2 the first 72.
const _: () = assert!(std::mem::offset_of!(JoinOptions, rejoin) == 56);
const _: () = assert!(std::mem::offset_of!(JoinOptions, group_key) == 72);
const _: () = assert!(std::mem::size_of::<JoinOptions>() == 112);

// The crate's exports, declared as a C caller sees them (the rlib carries the symbols).
#[allow(non_camel_case_types)]
type mc_group = c_void;
extern "C" {
    fn mc_join(
        group: *const c_char,
        port: i32,
        iface: *const c_char,
        out: *mut *mut mc_group,
    ) -> c_int;
    fn mc_join_options_init(options: *mut JoinOptions, version: u32) -> c_int;
    fn mc_join_with_options(
        group: *const c_char,
        port: i32,
        options: *const JoinOptions,
        out: *mut *mut mc_group,
    ) -> c_int;
    fn mc_fd(group: *const mc_group, out_fd: *mut c_int) -> c_int;
    fn mc_receive_buffer_size(group: *const mc_group, out: *mut usize) -> c_int;
    fn mc_send(group: *mut mc_group, data: *const c_void, len: usize) -> c_int;
    fn mc_send_json(group: *mut mc_group, json: *const c_char) -> c_int;
    fn mc_receive(
        group: *mut mc_group,
        timeout_seconds: f64,
        buf: *mut c_void,
        capacity: usize,
        out_len: *mut usize,
        source: *mut c_char,
        source_capacity: usize,
    ) -> c_int;
    fn mc_close(group: *mut mc_group) -> c_int;
    fn mc_free(group: *mut mc_group);
    fn mc_last_error() -> *const c_char;
    fn mc_status_str(status: c_int) -> *const c_char;
}

const MC_OK: c_int = 0;
const MC_TIMEOUT: c_int = 1;

fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap()
}

/// A failed call must leave a message saying why.
fn check_failure(status: c_int) {
    // SAFETY: both return NUL-terminated static or thread-local strings.
    let (error, name) = unsafe {
        (
            CStr::from_ptr(mc_last_error()),
            CStr::from_ptr(mc_status_str(status)),
        )
    };
    assert!(
        !error.to_bytes().is_empty(),
        "status {status} without a message"
    );
    assert!(!name.to_bytes().is_empty());
}

/// Interfaces that exist in `scripts/netns`, so that many joins succeed and the calls
/// after them run; the fuzzer's own bytes cover the names that do not exist.
const INTERFACES: [&[u8]; 4] = [b"", b"mc0", b"10.203.0.1", b"lo"];

fuzz_target!(|input: (
    u8,
    [u8; 2],
    &[u8],
    i32,
    &[u8],
    &[u8],
    &[u8],
    f64,
    u16,
    c_int,
    (u32, u32, i32, bool, u32)
)| {
    let (
        shape,
        [g1, g2],
        group_text,
        port,
        iface_text,
        data,
        json_text,
        timeout,
        capacity,
        any_status,
        (version, index, ttl, loopback, receive_buffer),
    ) = input;
    // Half the inputs use a valid group and a known interface; the rest are raw bytes.
    let group_addr = match shape & 1 {
        0 => c_string(group_text),
        _ => c_string(format!("239.{g1}.{g2}.1").as_bytes()),
    };
    let iface = match shape >> 1 & 7 {
        n @ 0..=3 => c_string(INTERFACES[usize::from(n)]),
        _ => c_string(iface_text),
    };
    let json = c_string(json_text);

    // SAFETY: every pointer is valid for the length passed with it.
    unsafe {
        assert!(!CStr::from_ptr(mc_status_str(any_status))
            .to_bytes()
            .is_empty());

        let mut group: *mut mc_group = std::ptr::null_mut();
        let status = if shape & 0x10 == 0 {
            mc_join(group_addr.as_ptr(), port, iface.as_ptr(), &mut group)
        } else {
            // Versioned options: init with the fuzzed version, then arbitrary fields.
            let mut options: JoinOptions = std::mem::zeroed();
            let init = mc_join_options_init(&mut options, version % 5);
            if init != MC_OK {
                check_failure(init);
            }
            options.version = version % 5;
            options.interface_name = if index % 2 == 0 {
                iface.as_ptr()
            } else {
                std::ptr::null()
            };
            options.interface_index = index % 8;
            options.ttl = ttl;
            options.loopback = loopback;
            options.receive_buffer_size = receive_buffer as usize;
            options.gro = loopback && index % 2 == 0;
            options.packet_info = index % 4 < 2;
            // The fuzzed interface text doubles as an arbitrary source address.
            options.source_address = if index % 3 == 0 {
                iface.as_ptr()
            } else {
                std::ptr::null()
            };
            options.rejoin = index % 2 == 1;
            options.reannounce_seconds = if index % 5 == 0 { ttl as u32 } else { 0 };
            options.max_datagrams_per_second = if index % 3 == 1 { index } else { 0 };
            options.max_bytes_per_second = if index % 3 == 2 {
                receive_buffer as u32
            } else {
                0
            };
            // A key from the fuzzer's bytes: 32 of them make an authenticated group.
            if index % 4 == 3 {
                options.group_key = iface_text.as_ptr();
                options.group_key_len = iface_text.len();
                options.group_key_id = ttl as u8;
            }
            mc_join_with_options(group_addr.as_ptr(), port, &options, &mut group)
        };
        if status != MC_OK {
            assert!(group.is_null(), "failed join wrote a handle");
            return check_failure(status);
        }
        let (mut fd, mut granted) = (-1, 0usize);
        assert_eq!(mc_fd(group, &mut fd), MC_OK);
        assert!(fd >= 0);
        assert_eq!(mc_receive_buffer_size(group, &mut granted), MC_OK);
        assert!(granted > 0);
        for status in [
            mc_send(group, data.as_ptr().cast(), data.len()),
            mc_send_json(group, json.as_ptr()),
        ] {
            if status != MC_OK {
                check_failure(status);
            }
        }
        let mut buf = vec![0u8; usize::from(capacity)];
        let mut len = usize::MAX;
        let mut source = [0 as c_char; 64];
        // Never wait: a NaN must be refused, anything else only looks at the queue.
        let timeout = if timeout.is_nan() { timeout } else { 0.0 };
        let status = mc_receive(
            group,
            timeout,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut len,
            source.as_mut_ptr(),
            source.len(),
        );
        match status {
            MC_OK => assert!(len <= buf.len()),
            MC_TIMEOUT => {}
            other => check_failure(other),
        }
        assert_eq!(mc_close(group), MC_OK);
        mc_free(group);
    }
});
