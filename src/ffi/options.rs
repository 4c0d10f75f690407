//! `mc_join_options`: the versioned options struct of mc_join_with_options.
//!
//! libgit2's pattern: the caller declares the struct, mc_join_options_init fills it with
//! the defaults of the version the caller was compiled against, and the library reads
//! only the fields that version has. New fields are only ever appended, with a new
//! version number, so old binaries keep working against a newer library.

use std::ffi::c_char;
use std::ptr::addr_of_mut;
use std::time::Duration;

use super::{ffi_panic_boundary, ffi_status, mc_status, try_bytes, try_str_or_empty};
use crate::auth::GroupKey;
use crate::error::Error;
use crate::options::{JoinOptions, DEFAULT_TTL};

/// The mc_join_options layout this header describes. Pass it to mc_join_options_init.
/// Version 2 appended `rejoin`, `reannounce_seconds`, `max_datagrams_per_second` and
/// `max_bytes_per_second`; version 3 the group keys of authenticated groups. Earlier
/// versions are unchanged.
pub const MC_JOIN_OPTIONS_VERSION: u32 = 3;

/// Options for mc_join_with_options. Declare one, call mc_join_options_init on it, then
/// set the fields you need; the defaults are what mc_join does.
#[repr(C)]
pub struct mc_join_options {
    /// The layout version: MC_JOIN_OPTIONS_VERSION, set by mc_join_options_init.
    pub version: u32,
    /// Interface to join and send on: a name ("eth0") or one of this host's IPv4
    /// addresses; NULL or "" for none (default). Borrowed only during the call.
    pub interface_name: *const c_char,
    /// Interface to join and send on, by kernel index; 0 for none (default). At most one
    /// of interface_name and interface_index may be set.
    pub interface_index: u32,
    /// Time to live of sent datagrams, 1..255 (default 1: this link only).
    pub ttl: i32,
    /// Whether members on this host (this handle included) hear its sends (default true).
    pub loopback: bool,
    /// Requested socket receive buffer in bytes; 0 keeps the kernel's default (default).
    /// Linux caps it at net.core.rmem_max silently: read the granted size back with
    /// mc_receive_buffer_size.
    pub receive_buffer_size: usize,
    /// Let the kernel hand over runs of datagrams in one read (UDP_GRO; default false).
    /// The library splits them again, so receivers see the same datagrams with far fewer
    /// system calls; with it on, after mc_fd turns readable, receive until MC_TIMEOUT.
    pub gro: bool,
    /// Fill mc_received.destination and interface_index (IP_PKTINFO; default false: it
    /// costs the kernel work per datagram).
    pub packet_info: bool,
    /// Source-specific multicast: receive only what this address sends ("10.0.0.7",
    /// "fd00::7"); NULL or "" for any source (default). Borrowed only during the call.
    pub source_address: *const c_char,
    /// (Version 2.) Join again when the interface comes back: deleted and created again
    /// under the same name, or, for the kernel's choice, when the multicast route moves
    /// (default true). See mc_membership.
    pub rejoin: bool,
    /// (Version 2.) Announce the membership again every this many seconds (a leave and
    /// an immediate join, so the kernel sends an unsolicited report), for LANs whose
    /// snooping switches have no querier; 0 for never (default: networks with a querier
    /// need none, and each announcement leaves a moment of microseconds in which this
    /// handle is not a member). 60 suits: snooping switches forget after about 260 s.
    pub reannounce_seconds: u32,
    /// (Version 2.) Send budget: at most this many datagrams per second, as a token
    /// bucket holding one second's worth (0: no limit, default). A send over it fails
    /// with MC_ERR_RATE_LIMITED and sends nothing; mc_send_batch sends what it allows.
    pub max_datagrams_per_second: u32,
    /// (Version 2.) Send budget in payload bytes per second, as above (0: no limit).
    pub max_bytes_per_second: u32,
    /// (Version 3.) Authenticate the group: MC_GROUP_KEY_SIZE (32) bytes every member
    /// shares. Each datagram sent is sealed with ChaCha20-Poly1305 (MC_AUTH_OVERHEAD
    /// bytes more on the wire), and only datagrams sealed under a key the handle holds
    /// are received; the rest are dropped and counted (mc_auth_counters). NULL (the
    /// default) for a plain group. Copied at join: the caller may wipe it afterwards.
    /// docs/authentication.md specifies the wire format.
    pub group_key: *const u8,
    /// (Version 3.) The length of group_key: MC_GROUP_KEY_SIZE, or 0 with NULL.
    pub group_key_len: usize,
    /// (Version 3.) During a key rotation, a second key whose datagrams are accepted
    /// too (sends always use group_key); NULL (default) for none.
    pub previous_key: *const u8,
    /// (Version 3.) The length of previous_key: MC_GROUP_KEY_SIZE, or 0 with NULL.
    pub previous_key_len: usize,
    /// (Version 3.) The id of group_key, carried in every datagram so receivers know
    /// which key sealed it (default 0). Give each new key a new id.
    pub group_key_id: u8,
    /// (Version 3.) The id of previous_key; must differ from group_key_id.
    pub previous_key_id: u8,
}

// The layouts are fixed once released: version 1 ends with source_address (56 bytes
// where pointers and size_t are 8 bytes: LP64 and Windows' LLP64; 32 where they are 4),
// version 2 ends with max_bytes_per_second (72; 48), version 3 is the whole struct (112;
// 68). Only 32-bit and smaller fields follow the pointers, so no ABI pads them
// differently (a double would be 4-aligned on i686, 8 on armv7).
// Hand-written mirrors (the Python binding's ctypes structure, the fuzz target, the C
// test) assert the same sizes.
const _: () = assert!(
    std::mem::offset_of!(mc_join_options, rejoin) == if usize::BITS == 64 { 56 } else { 32 }
);
const _: () = assert!(
    std::mem::offset_of!(mc_join_options, group_key) == if usize::BITS == 64 { 72 } else { 48 }
);
const _: () =
    assert!(std::mem::size_of::<mc_join_options>() == if usize::BITS == 64 { 112 } else { 68 });

/// Fills `options` with the defaults of layout `version` (pass MC_JOIN_OPTIONS_VERSION):
/// no interface, TTL 1, loopback on, the kernel's receive buffer.
///
/// The caller owns `options`; nothing is allocated.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `options`, or a `version` this library does
/// not know, i.e. a header newer than the library).
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_join_options_init(
    options: *mut mc_join_options,
    version: u32,
) -> mc_status {
    ffi_status! {
        if options.is_null() {
            return Err(Error::invalid("options is NULL"));
        }
        check_version(version)?;
        // Only the fields of the caller's version exist in its memory: write each one
        // in place, never the whole (possibly larger) struct.
        addr_of_mut!((*options).version).write(version);
        addr_of_mut!((*options).interface_name).write(std::ptr::null());
        addr_of_mut!((*options).interface_index).write(0);
        addr_of_mut!((*options).ttl).write(DEFAULT_TTL as i32);
        addr_of_mut!((*options).loopback).write(true);
        addr_of_mut!((*options).receive_buffer_size).write(0);
        addr_of_mut!((*options).gro).write(false);
        addr_of_mut!((*options).packet_info).write(false);
        addr_of_mut!((*options).source_address).write(std::ptr::null());
        if version >= 2 {
            addr_of_mut!((*options).rejoin).write(true);
            addr_of_mut!((*options).reannounce_seconds).write(0);
            addr_of_mut!((*options).max_datagrams_per_second).write(0);
            addr_of_mut!((*options).max_bytes_per_second).write(0);
        }
        if version >= 3 {
            addr_of_mut!((*options).group_key).write(std::ptr::null());
            addr_of_mut!((*options).group_key_len).write(0);
            addr_of_mut!((*options).previous_key).write(std::ptr::null());
            addr_of_mut!((*options).previous_key_len).write(0);
            addr_of_mut!((*options).group_key_id).write(0);
            addr_of_mut!((*options).previous_key_id).write(0);
        }
        Ok(mc_status::MC_OK)
    }
}

fn check_version(version: u32) -> Result<(), Error> {
    if version == 0 || version > MC_JOIN_OPTIONS_VERSION {
        return Err(Error::invalid(format!(
            "mc_join_options version {version} is not supported (this libmulticast knows \
             1..{MC_JOIN_OPTIONS_VERSION}); call mc_join_options_init(&options, MC_JOIN_OPTIONS_VERSION)"
        )));
    }
    Ok(())
}

/// Reads the caller's struct into the core's options, field by field of its version.
///
/// # Safety
/// `options` must point to an initialised mc_join_options of at least its version's size
/// (version 1 callers have only the first 56 bytes; nothing past them is read).
pub(super) unsafe fn to_join_options(
    options: *const mc_join_options,
) -> Result<JoinOptions, Error> {
    let version = std::ptr::addr_of!((*options).version).read();
    check_version(version)?;
    let field = |f: *const c_char, name: &str| -> Result<String, Error> {
        Ok(try_str_or_empty(f, name)?.to_owned())
    };
    let interface = field(
        std::ptr::addr_of!((*options).interface_name).read(),
        "options.interface_name",
    )?;
    let raw_ttl = std::ptr::addr_of!((*options).ttl).read();
    let ttl = u32::try_from(raw_ttl)
        .map_err(|_| Error::invalid(format!("ttl must be between 1 and 255, not {raw_ttl}")))?;
    let mut join = JoinOptions {
        interface,
        interface_index: std::ptr::addr_of!((*options).interface_index).read(),
        ttl,
        loopback: std::ptr::addr_of!((*options).loopback).read(),
        receive_buffer: std::ptr::addr_of!((*options).receive_buffer_size).read(),
        gro: std::ptr::addr_of!((*options).gro).read(),
        packet_info: std::ptr::addr_of!((*options).packet_info).read(),
        source: field(
            std::ptr::addr_of!((*options).source_address).read(),
            "options.source_address",
        )?,
        ..JoinOptions::default()
    };
    if version >= 2 {
        join.rejoin = std::ptr::addr_of!((*options).rejoin).read();
        let seconds = std::ptr::addr_of!((*options).reannounce_seconds).read();
        join.reannounce = (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)));
        join.max_datagrams_per_second =
            std::ptr::addr_of!((*options).max_datagrams_per_second).read();
        join.max_bytes_per_second = std::ptr::addr_of!((*options).max_bytes_per_second).read();
    }
    if version >= 3 {
        join.group_key = key_field(
            std::ptr::addr_of!((*options).group_key).read(),
            std::ptr::addr_of!((*options).group_key_len).read(),
            std::ptr::addr_of!((*options).group_key_id).read(),
            "options.group_key",
        )?;
        join.previous_key = key_field(
            std::ptr::addr_of!((*options).previous_key).read(),
            std::ptr::addr_of!((*options).previous_key_len).read(),
            std::ptr::addr_of!((*options).previous_key_id).read(),
            "options.previous_key",
        )?;
    }
    Ok(join)
}

/// A key field of the options: none when NULL with length 0.
///
/// # Safety
/// `key` must be NULL or point to `len` readable bytes.
unsafe fn key_field(
    key: *const u8,
    len: usize,
    id: u8,
    name: &str,
) -> Result<Option<GroupKey>, Error> {
    if key.is_null() && len == 0 {
        return Ok(None);
    }
    let bytes = try_bytes(key.cast(), len, name)?;
    GroupKey::new(id, bytes)
        .map(Some)
        .map_err(|e| Error::invalid(format!("{name}: {}", e.message())))
}
