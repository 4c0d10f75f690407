//! `mc_group`: the C handle of a joined group, and the calls on it.

use std::ffi::{c_char, c_int, c_void, CString};

use super::options::{mc_join_options, to_join_options};
use super::{
    ffi_panic_boundary, ffi_status, mc_status, try_bytes, try_bytes_mut, try_mut, try_ref, try_str,
    try_str_or_empty,
};
use crate::address::{self, Timeout};
use crate::error::{Error, ErrorKind};
use crate::group::Group;
use crate::message::{self, SOURCE_MAX_V4};
use crate::options::JoinOptions;

/// A joined multicast group (opaque). Created by mc_join, released by mc_free.
pub struct mc_group {
    pub(super) group: Group,
    // The property texts live as long as the handle, so the getters can lend them.
    group_addr: CString,
    local_addr: CString,
}

impl mc_group {
    fn new(group: Group) -> Self {
        let text = |s: String| CString::new(s).expect("addresses have no NUL");
        mc_group {
            group_addr: text(group.group_addr().to_string()),
            local_addr: text(message::SourceText(&group.local_addr()).to_string()),
            group,
        }
    }
}

/// Joins the multicast group `group_addr` on `port` (1..65535): an IPv4 group
/// ("239.1.1.1") or an IPv6 group ("ff05::1", "ff02::1%eth0" with a zone; in brackets
/// as Go writes hosts, "[ff02::1%eth0]", too), always a literal, never a host name, and
/// exact: surrounding whitespace is refused. `interface_name` is an interface name
/// ("eth0"), one of this host's addresses ("10.0.0.5"), or NULL/"" for the kernel's
/// choice (the multicast route), for link-scoped IPv6 groups (ff01::/16, ff02::/16
/// scopes) as for the others. An interface without an IPv4 address is joined and sent
/// through by index.
///
/// Several handles (in one process or several) may join the same group and port; each
/// receives every datagram. A handle receives only its own group's datagrams. Multicast
/// loopback is on and the TTL is 1, so the process hears its own sends.
///
/// On MC_OK, `*out` is a new handle owned by the caller: release it with mc_free.
/// On failure `*out` is untouched.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group_addr` or `out`, non-UTF-8 text, malformed
/// address, port outside 1..65535), MC_ERR_NOT_MULTICAST, MC_ERR_INTERFACE (unknown or
/// down interface: "interface not found: NAME", or no multicast route), MC_ERR_IO.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_join(
    group_addr: *const c_char,
    port: i32,
    interface_name: *const c_char,
    out: *mut *mut mc_group,
) -> mc_status {
    ffi_status! {
        let out = try_mut(out, "out")?;
        let group_addr = try_str(group_addr, "group_addr")?;
        let interface_name = try_str_or_empty(interface_name, "interface_name")?;
        let port = address::parse_port(i64::from(port))?;
        let group = Group::join(group_addr, port, interface_name)?;
        *out = Box::into_raw(Box::new(mc_group::new(group)));
        Ok(mc_status::MC_OK)
    }
}

/// Joins as mc_join does, with the interface, TTL, loopback and receive buffer taken from
/// `options` (initialised with mc_join_options_init; NULL means all defaults, as mc_join).
///
/// On MC_OK, `*out` is a new handle owned by the caller: release it with mc_free.
/// On failure `*out` is untouched. `options` is only read during the call.
/// Errors: those of mc_join, plus MC_ERR_INVALID_ARGUMENT for an unknown options
/// version, a TTL outside 1..255, both interface_name and interface_index set, or a
/// receive buffer above INT_MAX; MC_ERR_INTERFACE for an unknown interface index.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_join_with_options(
    group_addr: *const c_char,
    port: i32,
    options: *const mc_join_options,
    out: *mut *mut mc_group,
) -> mc_status {
    ffi_status! {
        let out = try_mut(out, "out")?;
        let group_addr = try_str(group_addr, "group_addr")?;
        let options = if options.is_null() {
            JoinOptions::default()
        } else {
            to_join_options(options)?
        };
        let port = address::parse_port(i64::from(port))?;
        let group = Group::join_with(group_addr, port, &options)?;
        *out = Box::into_raw(Box::new(mc_group::new(group)));
        Ok(mc_status::MC_OK)
    }
}

/// Sends `len` bytes at `data` to the group as one datagram, byte for byte (an empty
/// datagram is valid; `data` may be NULL when `len` is 0).
///
/// The caller keeps ownership of `data`; it is not used after the call returns.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group`, NULL `data` with `len` > 0),
/// MC_ERR_MESSAGE_TOO_LARGE (more than MC_MAX_MESSAGE_SIZE bytes, MC_MAX_MESSAGE_SIZE_V6 on
/// an IPv6 group, MC_AUTH_OVERHEAD less on an authenticated group; nothing sent),
/// MC_ERR_CLOSED, MC_ERR_IO.
/// Thread-safety: safe from any thread, concurrently with every call but mc_free.
#[no_mangle]
pub unsafe extern "C" fn mc_send(
    group: *mut mc_group,
    data: *const c_void,
    len: usize,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let data = try_bytes(data, len, "data")?;
        handle.group.send(data)?;
        Ok(mc_status::MC_OK)
    }
}

/// Sends the NUL-terminated JSON text `json` the way scriptling sends a dict (Go's
/// encoding/json): parsed, then sent compact with object keys sorted, `<`, `>`, `&`
/// escaped as \u003c etc., and whole-number floats without a fraction. As in Go, arrays
/// and objects may nest 10,000 deep and a lone UTF-16 surrogate escape ("\ud800")
/// becomes U+FFFD; unlike Go's decoder, integers beyond 2^53 are sent exactly.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL or non-UTF-8), MC_ERR_INVALID_JSON (with
/// serde's line and column, or the nesting limit; nothing sent),
/// MC_ERR_MESSAGE_TOO_LARGE, MC_ERR_CLOSED, MC_ERR_IO.
/// Thread-safety: as mc_send.
#[no_mangle]
pub unsafe extern "C" fn mc_send_json(group: *mut mc_group, json: *const c_char) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let json = try_str(json, "json")?;
        handle.group.send_json(json)?;
        Ok(mc_status::MC_OK)
    }
}

/// Receives one datagram into `buf` (`capacity` bytes), waiting up to `timeout_seconds`:
/// > 0 waits that long, 0 returns at once, < 0 waits without limit; NaN is invalid.
///
/// On MC_OK, `buf` holds `*out_len` bytes (binary-safe, no NUL added) and, if `source`
/// is not NULL, `source` holds the sender as NUL-terminated "ip:port".
/// On MC_TIMEOUT, `*out_len` is 0 and `source` (if given) is "".
/// On MC_ERR_BUFFER_TOO_SMALL, `*out_len` is the datagram's size and the datagram stays
/// queued: retry with a buffer that large. A buffer of the group's limit
/// (MC_MAX_MESSAGE_SIZE for IPv4, MC_MAX_MESSAGE_SIZE_V6 for IPv6) is never too small,
/// and takes one system call per datagram instead of two.
/// On an authenticated group only authentic messages are delivered (decrypted; the
/// rest are dropped and counted, see mc_auth_counters) and the wait goes on past them.
/// `source_capacity` must be at least 22 for IPv4, 64 for IPv6 (MC_SOURCE_MAX); it is
/// checked before anything is received, so nothing is lost to a bad argument.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group` or `out_len`, NULL `buf` with
/// `capacity` > 0, NaN timeout, `source_capacity` too small), MC_ERR_BUFFER_TOO_SMALL,
/// MC_ERR_CLOSED (also when mc_close is called during the wait), MC_ERR_IO.
/// Thread-safety: safe from any thread; concurrent receivers each get distinct datagrams.
#[no_mangle]
pub unsafe extern "C" fn mc_receive(
    group: *mut mc_group,
    timeout_seconds: f64,
    buf: *mut c_void,
    capacity: usize,
    out_len: *mut usize,
    source: *mut c_char,
    source_capacity: usize,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let out_len = try_mut(out_len, "out_len")?;
        let buf = try_bytes_mut(buf, capacity, "buf")?;
        let mut source = match source.is_null() {
            true => None,
            false => Some(try_bytes_mut(source.cast(), source_capacity, "source")?),
        };
        let (needed, family) = match handle.group.group_addr() {
            std::net::IpAddr::V4(_) => (SOURCE_MAX_V4, "IPv4"),
            std::net::IpAddr::V6(_) => (message::SOURCE_MAX_V6, "IPv6"),
        };
        if source.as_ref().is_some_and(|s| s.len() < needed) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("source_capacity {source_capacity} is too small: an {family} source needs {needed} (MC_SOURCE_MAX is always enough)"),
            ));
        }
        let timeout = Timeout::from_seconds(timeout_seconds)?;
        *out_len = 0;
        if let Some(s) = source.as_deref_mut() {
            s[0] = 0;
        }
        match handle.group.receive(timeout, buf) {
            Ok(Some(received)) => {
                *out_len = received.len;
                if let Some(s) = source {
                    let n = super::text::format_source(&received.source, &mut s[..source_capacity - 1])
                        .map_err(|_| Error::new(ErrorKind::Io, "sender address longer than expected"))?;
                    s[n] = 0;
                }
                Ok(mc_status::MC_OK)
            }
            Ok(None) => Ok(mc_status::MC_TIMEOUT),
            Err(e) => {
                if let Some(needed) = e.needed_len() {
                    *out_len = needed;
                }
                Err(e)
            }
        }
    }
}

/// Leaves the group and closes its socket. Every receiver blocked on this handle returns
/// MC_ERR_CLOSED at once; later calls on it return MC_ERR_CLOSED; closing again returns
/// MC_OK. The handle and its property strings stay valid until mc_free.
///
/// After fork(), a handle the child inherited acts as closed in the child: every call
/// on it returns MC_ERR_CLOSED ("inherited across fork()"), and mc_close and mc_free
/// release only the child's copy of the descriptor. Nothing the child does to it
/// affects the parent's handle, and nothing waits for calls in flight in the parent.
/// A child that needs the group joins it again.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group`).
/// Thread-safety: safe from any thread, concurrently with every call but mc_free.
#[no_mangle]
pub unsafe extern "C" fn mc_close(group: *mut mc_group) -> mc_status {
    ffi_status! {
        try_ref(group, "group")?.group.close()?;
        Ok(mc_status::MC_OK)
    }
}

/// Releases a handle from mc_join, closing it first if needed. mc_free(NULL) does
/// nothing. Using the handle, or strings it returned, after mc_free is undefined
/// behaviour; call it once, after every other call on the handle has returned. In a
/// forked child it frees the child's copy only (see mc_close).
/// Thread-safety: not concurrently with any other call on the same handle.
#[no_mangle]
pub unsafe extern "C" fn mc_free(group: *mut mc_group) {
    ffi_panic_boundary! {
        if !group.is_null() {
            // SAFETY: a non-NULL handle came from Box::into_raw in mc_join and, by the
            // documented contract, is freed once.
            drop(Box::from_raw(group));
        }
    }
}

/// The group address as canonical text, e.g. "239.1.1.1".
///
/// The string belongs to the handle and stays valid until mc_free. NULL (with
/// mc_last_error set) if `group` is NULL.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_group_addr(group: *const mc_group) -> *const c_char {
    ffi_panic_boundary! {
        property(group, |h| h.group_addr.as_ptr())
    }
}

/// The group's port (1..65535), or -1 (with mc_last_error set) if `group` is NULL.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_port(group: *const mc_group) -> i32 {
    ffi_panic_boundary! {
        match try_ref(group, "group") {
            Ok(h) => i32::from(h.group.port()),
            Err(e) => {
                super::status::set_last_error(e.message());
                -1
            }
        }
    }
}

/// The socket's bound address as "ip:port" (the group address and port, since the
/// socket is bound to the group to keep other groups' traffic out).
///
/// The string belongs to the handle and stays valid until mc_free. NULL (with
/// mc_last_error set) if `group` is NULL.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_local_addr(group: *const mc_group) -> *const c_char {
    ffi_panic_boundary! {
        property(group, |h| h.local_addr.as_ptr())
    }
}

/// Writes to `*out` the socket's receive buffer size as the kernel granted it: Linux
/// doubles the requested size for bookkeeping and caps requests at net.core.rmem_max.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group` or `out`), MC_ERR_CLOSED, MC_ERR_IO.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_receive_buffer_size(
    group: *const mc_group,
    out: *mut usize,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let out = try_mut(out, "out")?;
        *out = handle.group.receive_buffer_size()?;
        Ok(mc_status::MC_OK)
    }
}

/// Writes to `*out_fd` the group's socket descriptor, for an event loop (poll, epoll,
/// select, kqueue-style wrappers, Go's netpoller): it is readable while a datagram is
/// queued; then call mc_receive with timeout 0, which returns MC_TIMEOUT once the
/// queue is empty.
///
/// The descriptor still belongs to the handle: do not read from, write to or close it,
/// and remove it from your event loop before mc_close, which closes it. An event loop
/// may set O_NONBLOCK on it (libuv does) or register a dup of it (Go's poller does): the
/// library's calls keep their semantics (sends wait for room in a full send buffer,
/// receives keep their timeouts), and mc_close still ends the membership and wakes every
/// waiter on the dup too (a dup keeps the socket itself open until it is closed). A
/// readable descriptor may hold nothing deliverable (an authenticated group's forgeries,
/// dropped and counted): mc_receive with timeout 0 then returns MC_TIMEOUT; wait again.
/// It also returns MC_TIMEOUT after dropping 64 of them with more still queued (so a
/// flood cannot hold a call): an edge-triggered loop (EPOLLET, Go's poller), which is
/// not told again about datagrams already queued, polls the descriptor with timeout 0
/// before it waits, and receives again while it is readable.
/// On Windows it is the socket's SOCKET handle (for WSAPoll or select), given as an int;
/// the socket is non-blocking there.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group` or `out_fd`), MC_ERR_CLOSED, MC_ERR_IO
/// (a Windows SOCKET value beyond INT_MAX, which Windows does not hand out in practice).
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_fd(group: *const mc_group, out_fd: *mut c_int) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let out_fd = try_mut(out_fd, "out_fd")?;
        let number = handle.group.handle_number().ok_or_else(|| Error::closed("mc_fd"))?;
        *out_fd = c_int::try_from(number).map_err(|_| {
            Error::new(
                ErrorKind::Io,
                format!("mc_fd failed: the socket handle {number} does not fit in an int"),
            )
        })?;
        Ok(mc_status::MC_OK)
    }
}

unsafe fn property(
    group: *const mc_group,
    get: impl FnOnce(&mc_group) -> *const c_char,
) -> *const c_char {
    match try_ref(group, "group") {
        Ok(h) => get(h),
        Err(e) => {
            super::status::set_last_error(e.message());
            std::ptr::null()
        }
    }
}
