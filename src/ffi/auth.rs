//! Authenticated groups in C: key generation, live rotation and the drop counters.

use super::group::mc_group;
use super::{
    ffi_panic_boundary, ffi_status, mc_status, try_bytes, try_bytes_mut, try_mut, try_ref,
};
use crate::auth::{GroupKey, KEY_LEN, OVERHEAD};
use crate::error::Error;

/// The size of a group key in bytes (mc_join_options.group_key, mc_rotate_key).
#[allow(dead_code)]
pub const MC_GROUP_KEY_SIZE: usize = 32;
const _: () = assert!(MC_GROUP_KEY_SIZE == KEY_LEN);

/// How many bytes sealing adds to each datagram of an authenticated group: its largest
/// message is MC_MAX_MESSAGE_SIZE (or MC_MAX_MESSAGE_SIZE_V6) less this.
#[allow(dead_code)]
pub const MC_AUTH_OVERHEAD: usize = 30;
const _: () = assert!(MC_AUTH_OVERHEAD == OVERHEAD);

/// Fills `out` (`out_len` must be MC_GROUP_KEY_SIZE) with a new random group key from
/// the operating system's generator. Hand it to every member by a channel you trust.
///
/// The caller owns `out`; wipe it when done.
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `out`, another length), MC_ERR_IO (no
/// randomness available).
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_generate_key(out: *mut u8, out_len: usize) -> mc_status {
    ffi_status! {
        let out = try_bytes_mut(out.cast(), out_len, "out")?;
        if out.len() != KEY_LEN {
            return Err(Error::invalid(format!(
                "out_len must be {KEY_LEN} (MC_GROUP_KEY_SIZE), not {out_len}"
            )));
        }
        out.copy_from_slice(GroupKey::generate(0)?.bytes());
        Ok(mc_status::MC_OK)
    }
}

/// Rotates an authenticated group's key: from now on sends are sealed under `key`
/// (MC_GROUP_KEY_SIZE bytes, copied) with id `key_id`, which must differ from the
/// current key's. With `keep_previous`, the key it replaces is still accepted while
/// the other members change over; a key kept from an earlier rotation is forgotten.
/// Rotate every receiver first (keeping the previous key), then the senders, then
/// rotate again later without keeping it, or simply join anew.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group` or `key`, a key of another length, the
/// current key's id, a group joined without a key), MC_ERR_CLOSED.
/// Thread-safety: safe from any thread; sends and receives under way use either key.
#[no_mangle]
pub unsafe extern "C" fn mc_rotate_key(
    group: *const mc_group,
    key_id: u8,
    key: *const u8,
    key_len: usize,
    keep_previous: bool,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        if key.is_null() {
            return Err(Error::invalid("key is NULL"));
        }
        let key = GroupKey::new(key_id, try_bytes(key.cast(), key_len, "key")?)?;
        if handle.group.is_closed() {
            return Err(Error::closed("mc_rotate_key"));
        }
        handle.group.rotate_key(&key, keep_previous)?;
        Ok(mc_status::MC_OK)
    }
}

/// Writes how many datagrams an authenticated group has dropped since the join: not
/// sealed by a key holder, malformed or altered (`*out_unauthenticated`), sealed under
/// a key id the handle does not hold (`*out_unknown_key`: a rotation out of step), and
/// authentic but replayed or too far behind their sender (`*out_replayed`). Any
/// out-parameter may be NULL when not wanted. All zero for a plain group.
///
/// Errors: MC_ERR_INVALID_ARGUMENT (NULL `group`), MC_ERR_CLOSED.
/// Thread-safety: safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn mc_auth_counters(
    group: *const mc_group,
    out_unauthenticated: *mut u64,
    out_unknown_key: *mut u64,
    out_replayed: *mut u64,
) -> mc_status {
    ffi_status! {
        let handle = try_ref(group, "group")?;
        if handle.group.is_closed() {
            return Err(Error::closed("mc_auth_counters"));
        }
        let counters = handle.group.auth_counters();
        for (out, value, name) in [
            (out_unauthenticated, counters.unauthenticated, "out_unauthenticated"),
            (out_unknown_key, counters.unknown_key, "out_unknown_key"),
            (out_replayed, counters.replayed, "out_replayed"),
        ] {
            if !out.is_null() {
                *try_mut(out, name)? = value;
            }
        }
        Ok(mc_status::MC_OK)
    }
}
