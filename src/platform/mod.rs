//! One facade over the operating system's datagram fast paths, one module per platform
//! behind it (quinn-udp's shape). The rest of the core calls only what is here, so a
//! platform difference lives in one place:
//!
//! - `linux` (cfg `linux_fast`, set by build.rs on Linux without the `portable`
//!   feature): GSO sends and GRO receives (UDP_SEGMENT/UDP_GRO), sendmmsg/recvmmsg, the
//!   kernel's drop counter (SO_RXQ_OVFL), destination and interface of each datagram
//!   (IP_PKTINFO), and the kernel's announcements of interface changes (rtnetlink).
//! - `portable` (every other Unix, and Linux with `--features portable`, which the tests
//!   also run): plain recvmsg/sendto over socket2, batches as loops, and each capability
//!   above reported absent by [`capabilities`] with its documented stand-in value.
//! - `windows`: the portable path's shape over Winsock, receiving through WSARecvMsg
//!   to drop other destinations' datagrams (a socket there cannot bind its group).
//!
//! `fallback` holds the batch loops the last two share.

use std::net::{IpAddr, SocketAddr};

#[cfg(linux_fast)]
mod linux;
#[cfg(linux_fast)]
mod route;
#[cfg(linux_fast)]
pub(crate) use linux::*;
#[cfg(linux_fast)]
pub(crate) use route::read_changes;

#[cfg(not(linux_fast))]
mod fallback;

#[cfg(all(unix, not(linux_fast)))]
mod portable;
#[cfg(all(unix, not(linux_fast)))]
pub(crate) use portable::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// What one burst of the kernel's interface announcements concerns, so that the upkeep
/// thread looks again only at the groups it can affect (a container host announces a
/// veth pair for every container started, on interfaces no group is on).
#[derive(Debug, Default)]
pub(crate) struct InterfaceChanges {
    /// Announcements were lost (the socket overran) or could not be read: every group.
    pub everything: bool,
    /// The interfaces whose link or addresses changed (each once).
    pub indexes: Vec<u32>,
    /// A link or an address appeared: a group whose interface is gone may have it back.
    pub appeared: bool,
    /// A route that can carry multicast changed, IPv4 ([0]) and IPv6 ([1]).
    pub routes: [bool; 2],
}

impl InterfaceChanges {
    #[cfg(linux_fast)] // the announcements' reader, route.rs
    pub(crate) fn touch(&mut self, index: u32) {
        if !self.indexes.contains(&index) {
            self.indexes.push(index);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.everything && self.indexes.is_empty() && !self.appeared && self.routes == [false; 2]
    }
}

/// What one receive returned besides the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecvMeta {
    /// Bytes written to the buffer (the whole coalesced run under GRO).
    pub len: usize,
    /// The sender; `None` when the socket was shut down.
    pub source: Option<SocketAddr>,
    /// The datagram did not fit the buffer (only possible when the caller allows it).
    pub truncated: bool,
    /// Under GRO, the size of each coalesced datagram but the last.
    pub segment: Option<usize>,
    /// The destination address of the datagram (the group), from IP_PKTINFO.
    pub destination: Option<IpAddr>,
    /// The interface it arrived on, from IP_PKTINFO.
    pub interface_index: Option<u32>,
    /// The socket's count of datagrams dropped for a full buffer (SO_RXQ_OVFL), when
    /// the kernel reports it (only once it is non-zero).
    pub dropped: Option<u32>,
}

/// What this build can do beyond the portable baseline. Where a capability is absent,
/// the same calls work with the stand-in its field documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The kernel counts datagrams dropped for a full receive buffer; without it,
    /// `dropped()` stays 0.
    pub drop_count: bool,
    /// Each datagram's destination group and arrival interface; without it, the
    /// `packet_info` option is accepted and those fields stay empty.
    pub packet_info: bool,
    /// Runs of datagrams handed over in one read (GRO); without it, the `gro` option is
    /// accepted and datagrams arrive one by one.
    pub gro: bool,
    /// Runs of equal-sized datagrams sent in one call (GSO); without it, batches are sent
    /// one datagram per call.
    pub gso: bool,
    /// Many datagrams per system call (sendmmsg/recvmmsg); without it, batch calls loop.
    pub batch_syscalls: bool,
    /// Interface changes are announced by the kernel, so groups join again by
    /// themselves; without it, a group is checked (and joined again) when its membership
    /// status is asked for, and link-scoped IPv6 groups need an interface named.
    pub interface_events: bool,
}

/// What this build of the library can do on this system.
pub fn capabilities() -> Capabilities {
    CAPABILITIES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_match_the_path_built() {
        let c = capabilities();
        let all = [
            c.drop_count,
            c.packet_info,
            c.gro,
            c.gso,
            c.batch_syscalls,
            c.interface_events,
        ];
        let expected = |linux_only: bool| cfg!(linux_fast) || (!linux_only && cfg!(windows));
        let linux_only = [true, false, true, true, true, true];
        assert!(
            all.iter()
                .zip(linux_only)
                .all(|(&has, only)| has == expected(only)),
            "{c:?}"
        );
    }
}
