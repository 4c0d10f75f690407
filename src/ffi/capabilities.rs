//! `mc_capability` and mc_capabilities: what this build can do on this system beyond the
//! portable baseline (see src/platform).

use super::{ffi_panic_boundary, ffi_status, mc_status, try_mut};
use crate::platform::capabilities;

/// One capability bit of mc_capabilities. The values are never renumbered. Where a
/// capability is absent, the same calls work with the stand-in each names.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mc_capability {
    /// The kernel counts datagrams dropped for a full buffer; without it mc_dropped
    /// writes 0.
    MC_CAP_DROP_COUNT = 1,
    /// mc_received.destination and interface_index are filled under
    /// mc_join_options.packet_info; without it they stay empty ("" and 0).
    MC_CAP_PACKET_INFO = 2,
    /// mc_join_options.gro hands runs over in one read; without it the option is
    /// accepted and datagrams arrive one by one.
    MC_CAP_GRO = 4,
    /// mc_send_batch sends runs of equal-sized datagrams in one call (GSO); without it,
    /// one datagram per call.
    MC_CAP_GSO = 8,
    /// mc_send_batch and mc_receive_batch use one system call for many datagrams;
    /// without it they loop.
    MC_CAP_BATCH_SYSCALLS = 16,
    /// The kernel announces interface changes, so groups join again by themselves and
    /// link-scoped IPv6 groups follow the kernel's route; without it, mc_membership
    /// checks (and joins again) when called, and those groups need an interface named.
    MC_CAP_INTERFACE_EVENTS = 32,
}

/// Writes the mc_capability bits this build has on this system to `*out`: all of them
/// on Linux; none on the portable path (macOS, the BSDs, and Linux builds with the
/// `portable` feature), where each documents its stand-in.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `out`).
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_capabilities(out: *mut u32) -> mc_status {
    ffi_status! {
        let out = try_mut(out, "out")?;
        let c = capabilities();
        let bits = [
            (c.drop_count, mc_capability::MC_CAP_DROP_COUNT),
            (c.packet_info, mc_capability::MC_CAP_PACKET_INFO),
            (c.gro, mc_capability::MC_CAP_GRO),
            (c.gso, mc_capability::MC_CAP_GSO),
            (c.batch_syscalls, mc_capability::MC_CAP_BATCH_SYSCALLS),
            (c.interface_events, mc_capability::MC_CAP_INTERFACE_EVENTS),
        ];
        *out = bits
            .iter()
            .filter(|(has, _)| *has)
            .fold(0, |all, (_, bit)| all | *bit as u32);
        Ok(mc_status::MC_OK)
    }
}
