//! `mc_datagram` and `mc_received`: many datagrams per call (mc_send_batch,
//! mc_receive_batch), and the drop counter (mc_dropped).

use std::ffi::{c_char, c_void};

use super::group::mc_group;
use super::status::MC_SOURCE_MAX;
use super::{
    ffi_panic_boundary, ffi_status, mc_status, try_bytes, try_bytes_mut, try_mut, try_ref,
    try_slice, try_slice_mut,
};
use crate::address::Timeout;
use crate::error::{Error, ErrorKind};
use crate::group::Received;
use crate::message;

/// Datagrams sent per core call: one GSO run's worth, and a stack array, not the heap.
const CHUNK: usize = 64;
/// Slots received per core call: one recvmmsg's worth. Its arrays are on the stack, which
/// every export keeps within a 32 KiB thread stack.
const RECEIVE_CHUNK: usize = crate::platform::MMSG_MAX;

/// One datagram of mc_send_batch: `len` bytes at `data` (NULL allowed when `len` is 0).
#[repr(C)]
pub struct mc_datagram {
    /// The payload; the caller keeps ownership.
    pub data: *const c_void,
    /// Its length, 0..MC_MAX_MESSAGE_SIZE (MC_MAX_MESSAGE_SIZE_V6 on an IPv6 group).
    pub len: usize,
}

/// One slot of mc_receive_batch. The caller sets `buf` and `capacity`; for each slot
/// filled, the library sets the rest.
#[repr(C)]
pub struct mc_received {
    /// Where the datagram goes (caller-owned).
    pub buf: *mut c_void,
    /// Bytes available at `buf`.
    pub capacity: usize,
    /// The datagram's length.
    pub len: usize,
    /// The sender as "ip:port", NUL-terminated.
    pub source: [c_char; MC_SOURCE_MAX],
    /// The address the datagram was sent to (this handle's group), e.g. "239.1.1.1";
    /// "" unless the handle was joined with mc_join_options.packet_info.
    pub destination: [c_char; MC_SOURCE_MAX],
    /// The kernel index of the interface it arrived on (if_indextoname gives its name);
    /// 0 unless the handle was joined with mc_join_options.packet_info.
    pub interface_index: u32,
}

/// Sends `count` datagrams to the group in order, in as few system calls as the kernel
/// allows: runs of equal-sized datagrams (the last of a run may be shorter) go out with
/// UDP generic segmentation offload, up to 64 per call; the others with sendmmsg. Where
/// the kernel refuses GSO the library falls back by itself. Receivers see exactly the
/// datagrams of `count` mc_send calls.
///
/// On MC_OK, `*out_sent` says how many were sent: fewer than `count` means the kernel
/// stopped taking them (send the rest again to learn why). The caller keeps ownership of
/// every buffer.
/// Errors (nothing sent): MC_ERR_INVALID_ARGUMENT (NULL `group`, `out_sent`, `datagrams`
/// with `count` > 0, or a datagram's NULL `data` with `len` > 0),
/// MC_ERR_MESSAGE_TOO_LARGE (any datagram over the group's limit, MC_MAX_MESSAGE_SIZE or
/// MC_MAX_MESSAGE_SIZE_V6; checked first),
/// MC_ERR_CLOSED, MC_ERR_IO.
/// Thread-safety: safe from any thread, concurrently with every call but mc_free.
#[no_mangle]
pub unsafe extern "C" fn mc_send_batch(
    group: *mut mc_group,
    datagrams: *const mc_datagram,
    count: usize,
    out_sent: *mut usize,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let out_sent = try_mut(out_sent, "out_sent")?;
        let datagrams = try_slice(datagrams, count, "datagrams")?;
        // All of them before the first chunk goes out: a bad datagram sends nothing.
        let limit = handle.group.max_message_size();
        for d in datagrams {
            message::check_size_for(try_bytes(d.data, d.len, "datagram data")?.len(), limit)?;
        }
        *out_sent = 0;
        for chunk in datagrams.chunks(CHUNK) {
            let mut views: [&[u8]; CHUNK] = [&[]; CHUNK];
            for (view, d) in views.iter_mut().zip(chunk) {
                *view = try_bytes(d.data, d.len, "datagram data")?;
            }
            match handle.group.send_batch(&views[..chunk.len()]) {
                Ok(n) => {
                    *out_sent += n;
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(_) if *out_sent > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(mc_status::MC_OK)
    }
}

/// Receives up to `count` datagrams into `slots`: waits up to `timeout_seconds` (as in
/// mc_receive) for the first, then takes whatever else is already queued without
/// waiting. `*out_count` is how many slots were filled (0 with MC_TIMEOUT). With
/// `count` 0 it returns MC_TIMEOUT at once without waiting or consuming anything.
///
/// Each slot gets the datagram and its sender, and with the join option packet_info the
/// group it was sent to and the interface it arrived on. A datagram larger than its slot stays queued: the batch ends before it,
/// or, if it is the first, the call fails with MC_ERR_BUFFER_TOO_SMALL and the slot's
/// `len` set to the size needed.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group`, `out_count`, `slots` with `count` > 0,
/// NaN timeout, a slot's NULL `buf` with `capacity` > 0; every slot is checked before anything is
/// received, so nothing is lost), MC_ERR_BUFFER_TOO_SMALL,
/// MC_ERR_CLOSED, MC_ERR_IO.
/// Thread-safety: safe from any thread, concurrently with every call but mc_free;
/// concurrent receivers get distinct datagrams.
#[no_mangle]
pub unsafe extern "C" fn mc_receive_batch(
    group: *mut mc_group,
    timeout_seconds: f64,
    slots: *mut mc_received,
    count: usize,
    out_count: *mut usize,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        let out_count = try_mut(out_count, "out_count")?;
        let slots = try_slice_mut(slots, count, "slots")?;
        let mut timeout = Timeout::from_seconds(timeout_seconds)?;
        *out_count = 0;
        // Every slot before any datagram is taken: a bad slot must not cost one.
        check_slots(slots)?;
        for chunk in slots.chunks_mut(RECEIVE_CHUNK) {
            let mut bufs: [&mut [u8]; RECEIVE_CHUNK] = std::array::from_fn(|_| &mut [][..]);
            for (buf, slot) in bufs.iter_mut().zip(chunk.iter()) {
                *buf = try_bytes_mut(slot.buf, slot.capacity, "slot buf")?;
            }
            let mut received: [Option<Received>; RECEIVE_CHUNK] = [None; RECEIVE_CHUNK];
            let filled = match handle.group.receive_batch(timeout, &mut bufs[..chunk.len()], &mut received[..chunk.len()]) {
                Ok(n) => n,
                Err(_) if *out_count > 0 => break,
                Err(e) => {
                    if let (Some(needed), Some(slot)) = (e.needed_len(), chunk.first_mut()) {
                        slot.len = needed;
                    }
                    return Err(e);
                }
            };
            let mut texts = SlotTexts::default();
            for (slot, r) in chunk.iter_mut().zip(&received[..filled]) {
                if let Some(r) = r {
                    texts.fill(slot, r)?;
                }
            }
            *out_count += filled;
            if filled < chunk.len() {
                break;
            }
            timeout = Timeout::After(std::time::Duration::ZERO);
        }
        Ok(if *out_count == 0 { mc_status::MC_TIMEOUT } else { mc_status::MC_OK })
    }
}

fn check_slots(slots: &[mc_received]) -> Result<(), Error> {
    for (i, slot) in slots.iter().enumerate() {
        if slot.buf.is_null() && slot.capacity > 0 {
            return Err(Error::invalid(format!(
                "slots[{i}].buf is NULL with capacity {}; nothing was received",
                slot.capacity
            )));
        }
        if slot.capacity > isize::MAX as usize {
            return Err(Error::invalid(format!(
                "slots[{i}].capacity {} is impossible; nothing was received",
                slot.capacity
            )));
        }
    }
    Ok(())
}

/// The text of the last sender and destination written, reused while they repeat (a GRO
/// run, a busy sender): formatting an address costs more than the rest of a slot.
struct SlotTexts {
    last: Option<(std::net::SocketAddr, Option<std::net::IpAddr>)>,
    source: [c_char; MC_SOURCE_MAX],
    destination: [c_char; MC_SOURCE_MAX],
}

impl Default for SlotTexts {
    fn default() -> Self {
        SlotTexts {
            last: None,
            source: [0; MC_SOURCE_MAX],
            destination: [0; MC_SOURCE_MAX],
        }
    }
}

impl SlotTexts {
    fn fill(&mut self, slot: &mut mc_received, r: &Received) -> Result<(), Error> {
        if self.last != Some((r.source, r.destination)) {
            write_text(&mut self.source, |out| {
                super::text::format_source(&r.source, out)
            })?;
            match r.destination {
                Some(d) => write_text(&mut self.destination, |out| {
                    super::text::format_source_ip(&d, out)
                })?,
                None => self.destination[0] = 0,
            }
            self.last = Some((r.source, r.destination));
        }
        slot.len = r.len;
        slot.interface_index = r.interface_index.unwrap_or(0);
        slot.source = self.source;
        slot.destination = self.destination;
        Ok(())
    }
}

fn write_text(
    out: &mut [c_char; MC_SOURCE_MAX],
    write: impl FnOnce(&mut [u8]) -> Result<usize, std::fmt::Error>,
) -> Result<(), Error> {
    let mut bytes = [0u8; MC_SOURCE_MAX];
    let n = write(&mut bytes[..MC_SOURCE_MAX - 1])
        .map_err(|_| Error::new(ErrorKind::Io, "address text longer than expected"))?;
    for (o, b) in out.iter_mut().zip(&bytes[..=n]) {
        *o = *b as c_char;
    }
    Ok(())
}

/// Writes to `*out` how many datagrams the kernel dropped for this handle's socket
/// because its receive buffer was full (SO_RXQ_OVFL), as of the last datagram received:
/// loss made visible. Raise it with mc_join_options.receive_buffer_size.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group` or `out`).
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_dropped(group: *const mc_group, out: *mut u32) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        *try_mut(out, "out")? = handle.group.dropped();
        Ok(mc_status::MC_OK)
    }
}

// The slot's text fields hold any sender, including an IPv6 one with a zone.
const _: () = assert!(MC_SOURCE_MAX >= message::SOURCE_MAX_V4);
