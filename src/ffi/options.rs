//! `mc_join_options`: the versioned options struct of mc_join_with_options.
//!
//! libgit2's pattern: the caller declares the struct, mc_join_options_init fills it with
//! the defaults of the version the caller was compiled against, and the library reads
//! only the fields that version has. New fields are only ever appended, with a new
//! version number, so old binaries keep working against a newer library.

use std::ffi::c_char;

use super::{ffi_panic_boundary, ffi_status, mc_status, try_mut, try_str_or_empty};
use crate::error::Error;
use crate::options::{JoinOptions, DEFAULT_TTL};

/// The mc_join_options layout this header describes. Pass it to mc_join_options_init.
pub const MC_JOIN_OPTIONS_VERSION: u32 = 1;

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
}

// The layout of version 1 is fixed: hand-written mirrors (the Python binding's ctypes
// structure, the fuzz target) assert the same size, so none can drift unnoticed.
const _: () = assert!(std::mem::size_of::<mc_join_options>() == 56 || usize::BITS != 64);

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
        let options = try_mut(options, "options")?;
        check_version(version)?;
        *options = mc_join_options {
            version,
            interface_name: std::ptr::null(),
            interface_index: 0,
            ttl: DEFAULT_TTL as i32,
            loopback: true,
            receive_buffer_size: 0,
            gro: false,
            packet_info: false,
            source_address: std::ptr::null(),
        };
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
/// `options` must point to an initialised mc_join_options of at least its version's size.
pub(super) unsafe fn to_join_options(options: &mc_join_options) -> Result<JoinOptions, Error> {
    check_version(options.version)?;
    let interface = try_str_or_empty(options.interface_name, "options.interface_name")?;
    let ttl = u32::try_from(options.ttl).map_err(|_| {
        Error::invalid(format!(
            "ttl must be between 1 and 255, not {}",
            options.ttl
        ))
    })?;
    Ok(JoinOptions {
        interface: interface.to_owned(),
        interface_index: options.interface_index,
        ttl,
        loopback: options.loopback,
        receive_buffer: options.receive_buffer_size,
        gro: options.gro,
        packet_info: options.packet_info,
        source: try_str_or_empty(options.source_address, "options.source_address")?.to_owned(),
    })
}
