//! `mc_membership_status` and mc_membership: whether a handle still hears its group.

use super::group::mc_group;
use super::{ffi_panic_boundary, ffi_status, mc_status, try_mut, try_ref};
use crate::error::Error;
use crate::upkeep::MembershipStatus;

/// Whether a handle's membership is in place now (mc_membership). The values are never
/// renumbered.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mc_membership_status {
    /// Joined on an interface that is up: datagrams to the group arrive.
    MC_MEMBERSHIP_JOINED = 0,
    /// Joined, but the interface is down: nothing arrives until it is up again.
    MC_MEMBERSHIP_INTERFACE_DOWN = 1,
    /// The interface is gone (deleted, or no multicast route left): nothing arrives.
    /// With mc_join_options.rejoin (the default) the handle joins again as soon as an
    /// interface of that name (or the route) is back.
    MC_MEMBERSHIP_INTERFACE_GONE = 2,
}

/// Writes whether `group`'s membership is in place now to `*out_status`, and how many
/// times the library has joined again on a re-created or re-routed interface to
/// `*out_rejoins` (either out-parameter may be NULL when not wanted). Receives keep
/// waiting while the interface is gone; this is how to learn why nothing arrives.
///
/// The library follows the kernel's announcements of link, address and route changes
/// (rtnetlink, one thread per process, idle in poll) and updates both within moments.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group`), MC_ERR_CLOSED.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_membership(
    group: *const mc_group,
    out_status: *mut mc_membership_status,
    out_rejoins: *mut u64,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        if handle.group.is_closed() {
            return Err(Error::closed("mc_membership"));
        }
        if !out_status.is_null() {
            *try_mut(out_status, "out_status")? = match handle.group.membership_status() {
                MembershipStatus::Joined => mc_membership_status::MC_MEMBERSHIP_JOINED,
                MembershipStatus::InterfaceDown => mc_membership_status::MC_MEMBERSHIP_INTERFACE_DOWN,
                MembershipStatus::InterfaceGone => mc_membership_status::MC_MEMBERSHIP_INTERFACE_GONE,
            };
        }
        if !out_rejoins.is_null() {
            *try_mut(out_rejoins, "out_rejoins")? = handle.group.rejoins();
        }
        Ok(mc_status::MC_OK)
    }
}
