//! How a group is joined: interface, TTL, loopback and receive buffer.
//!
//! `Group::join` covers the common case; [`JoinOptions`] covers the rest without
//! growing `join`'s argument list (the C API mirrors it with a versioned struct).

use std::time::Duration;

use crate::auth::{GroupKey, Keyring};
use crate::error::{Error, Result};

/// The IPv4 TTL of sent datagrams by default: 1 keeps them on the local link, as scriptling does.
pub const DEFAULT_TTL: u32 = 1;

/// Options for [`Group::join_with`](crate::Group::join_with). Start from
/// `JoinOptions::default()` (kernel's interface, TTL 1, loopback on, kernel's buffer)
/// and change what you need:
///
/// ```
/// use multicast::JoinOptions;
/// let options = JoinOptions::default().interface("eth0").ttl(4).loopback(false);
/// assert_eq!(options.ttl, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOptions {
    /// An interface name (`eth0`) or one of this host's IPv4 addresses; `""` for none.
    pub interface: String,
    /// A kernel interface index (`ip link` shows it); 0 for none. At most one of
    /// `interface` and `interface_index` may be set.
    pub interface_index: u32,
    /// Time to live of sent datagrams, 1..=255 (1: this link only).
    pub ttl: u32,
    /// Whether this host's own members (this handle included) hear what it sends.
    pub loopback: bool,
    /// Requested socket receive buffer in bytes (`SO_RCVBUF`); 0 keeps the kernel's
    /// default. Linux caps it at `net.core.rmem_max` without an error, so read back
    /// what was granted with [`Group::receive_buffer_size`](crate::Group::receive_buffer_size).
    pub receive_buffer: usize,
    /// Let the kernel hand over runs of datagrams in one read (UDP_GRO); the library
    /// splits them again, so receivers see the same datagrams, with far fewer system
    /// calls at high rates. With it on, after the descriptor turns readable, receive
    /// until nothing is left: datagrams of a run already read no longer show there.
    pub gro: bool,
    /// Record each datagram's destination group and arrival interface (IP_PKTINFO) in
    /// [`Received`](crate::Received). Off by default: it costs the kernel work per
    /// datagram, also for the datagrams a full buffer then drops.
    pub packet_info: bool,
    /// Source-specific multicast: receive only datagrams sent by this address (IPv4 for
    /// an IPv4 group, IPv6 for an IPv6 one); `""` for any source. 232.0.0.0/8 and
    /// ff3x::/32 are the SSM ranges; Linux accepts a source filter on any group.
    pub source: String,
    /// Join again when the interface comes back: deleted and created again under the
    /// same name (a VPN, USB or Wi-Fi adapter reconnecting), or, for the kernel's choice,
    /// when the multicast route moves. On by default; see
    /// [`Group::membership_status`](crate::Group::membership_status).
    pub rejoin: bool,
    /// Announce the membership again at this interval (a leave and an immediate join,
    /// so the kernel sends an unsolicited report), for LANs whose snooping switches
    /// have no querier and forget a group after about 260 s. `None` (the default):
    /// networks with a querier need none, and each announcement leaves a moment of
    /// microseconds in which this socket is not a member. At least 1 s; 60 s suits.
    pub reannounce: Option<Duration>,
    /// Send budget: at most this many datagrams per second (0: no limit), as a token
    /// bucket holding one second's worth. A send over it fails with
    /// [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited) and sends nothing; a
    /// batch sends what the budget allows. For hosts that run untrusted code.
    pub max_datagrams_per_second: u32,
    /// Send budget in payload bytes per second (0: no limit), as above.
    pub max_bytes_per_second: u32,
    /// Authenticate the group under this key: every datagram sent is sealed with
    /// ChaCha20-Poly1305, and only datagrams sealed by a holder of the key are received
    /// (see [`auth`](crate::auth) and docs/authentication.md). `None`: a plain group.
    pub group_key: Option<GroupKey>,
    /// During a key rotation, a second key (another id) whose datagrams are accepted
    /// too; sends always use `group_key`.
    pub previous_key: Option<GroupKey>,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            interface: String::new(),
            interface_index: 0,
            ttl: DEFAULT_TTL,
            loopback: true,
            receive_buffer: 0,
            gro: false,
            packet_info: false,
            source: String::new(),
            rejoin: true,
            reannounce: None,
            max_datagrams_per_second: 0,
            max_bytes_per_second: 0,
            group_key: None,
            previous_key: None,
        }
    }
}

impl JoinOptions {
    /// Joins and sends on the interface named `spec` (a name or an IPv4 address).
    pub fn interface(mut self, spec: &str) -> Self {
        self.interface = spec.to_owned();
        self
    }

    /// Joins and sends on the interface with kernel index `index`.
    pub fn interface_index(mut self, index: u32) -> Self {
        self.interface_index = index;
        self
    }

    /// Sets the TTL of sent datagrams (1..=255).
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Turns multicast loopback on or off.
    pub fn loopback(mut self, on: bool) -> Self {
        self.loopback = on;
        self
    }

    /// Requests a socket receive buffer of `bytes` (0: the kernel's default).
    pub fn receive_buffer(mut self, bytes: usize) -> Self {
        self.receive_buffer = bytes;
        self
    }

    /// Turns UDP_GRO receive coalescing on or off.
    pub fn gro(mut self, on: bool) -> Self {
        self.gro = on;
        self
    }

    /// Turns per-datagram destination and interface reporting (IP_PKTINFO) on or off.
    pub fn packet_info(mut self, on: bool) -> Self {
        self.packet_info = on;
        self
    }

    /// Receives only from `address` (source-specific multicast).
    pub fn source(mut self, address: &str) -> Self {
        self.source = address.to_owned();
        self
    }

    /// Whether to join again when the interface comes back (default on).
    pub fn rejoin(mut self, on: bool) -> Self {
        self.rejoin = on;
        self
    }

    /// Limits sends to `datagrams` and `bytes` per second (0: no limit on that count).
    pub fn send_limit(mut self, datagrams: u32, bytes: u32) -> Self {
        self.max_datagrams_per_second = datagrams;
        self.max_bytes_per_second = bytes;
        self
    }

    /// Re-announce the membership at this interval (`None`: never, the default).
    pub fn reannounce(mut self, every: Option<Duration>) -> Self {
        self.reannounce = every;
        self
    }

    /// Seals and authenticates the group under `key` (see [`JoinOptions::group_key`]).
    pub fn group_key(mut self, key: GroupKey) -> Self {
        self.group_key = Some(key);
        self
    }

    /// Accepts datagrams sealed under `key` too, during a rotation.
    pub fn previous_key(mut self, key: GroupKey) -> Self {
        self.previous_key = Some(key);
        self
    }

    /// Refuses combinations no socket can have, before any socket is opened.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=255).contains(&self.ttl) {
            return Err(Error::invalid(format!(
                "ttl must be between 1 and 255, not {}",
                self.ttl
            )));
        }
        if !self.interface.is_empty() && self.interface_index != 0 {
            return Err(Error::invalid(
                "name the interface by name/address or by index, not both",
            ));
        }
        if self
            .reannounce
            .is_some_and(|every| every < Duration::from_secs(1))
        {
            return Err(Error::invalid(
                "reannounce interval must be at least 1 second (or none)",
            ));
        }
        match (&self.group_key, &self.previous_key) {
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "a previous key needs a group key (the one sends use)",
                ))
            }
            (Some(current), previous) => {
                Keyring::new(current, previous.as_ref())?;
            }
            (None, None) => {}
        }
        if self.receive_buffer > i32::MAX as usize {
            return Err(Error::invalid(format!(
                "receive buffer of {} bytes is larger than the largest the kernel accepts ({})",
                self.receive_buffer,
                i32::MAX
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_match_join() {
        let o = JoinOptions::default();
        assert_eq!((o.ttl, o.loopback, o.receive_buffer), (1, true, 0));
        assert!(o.validate().is_ok());
    }

    #[test]
    fn ttl_range() {
        for ttl in [0, 256, u32::MAX] {
            let e = JoinOptions::default().ttl(ttl).validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().starts_with("ttl must be between 1 and 255"));
        }
        for ttl in [1, 64, 255] {
            assert!(JoinOptions::default().ttl(ttl).validate().is_ok());
        }
    }

    #[test]
    fn interface_by_name_and_index_conflict() {
        let e = JoinOptions::default()
            .interface("eth0")
            .interface_index(2)
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn oversized_receive_buffer() {
        let e = JoinOptions::default()
            .receive_buffer(usize::MAX)
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
