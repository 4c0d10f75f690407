//! The kernel's routing choice for a group, asked of the kernel itself (rtnetlink
//! RTM_GETROUTE, what `ip route get` does), and what its announcements of link, address
//! and route changes concern (for the upkeep thread).
//!
//! A link-scoped IPv6 group (`ff02::1`) joined without an interface must still be bound
//! with a zone, so the library needs the interface the kernel would pick for it: the
//! one Go's `ListenMulticastUDP` (and so scriptling's module) ends up on.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::InterfaceChanges;

const NLMSG_HEADER_LEN: usize = 16;
const RTMSG_LEN: usize = 12;
const RTA_HEADER_LEN: usize = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
/// Where the interface index is in an ifinfomsg (links) and an ifaddrmsg (addresses).
const IFINFOMSG_INDEX: usize = 4;
const IFADDRMSG_INDEX: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;

/// The index of the interface the kernel routes `destination` through.
pub(crate) fn interface_for(destination: IpAddr) -> io::Result<u32> {
    let socket = netlink_socket()?;
    // The kernel answers at once; the bound only keeps a broken kernel from hanging a join.
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.send(&request(destination))?;
    let mut reply = vec![0u8; 8192];
    let len = (&socket).read(&mut reply)?;
    parse_reply(&reply[..len])
}

/// A socket to the kernel's routing subsystem (rtnetlink).
pub(super) fn netlink_socket() -> io::Result<Socket> {
    Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )
}

/// An RTM_GETROUTE request for one destination address.
fn request(destination: IpAddr) -> Vec<u8> {
    let (family, octets): (u8, Vec<u8>) = match destination {
        IpAddr::V4(v4) => (libc::AF_INET as u8, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6 as u8, v6.octets().to_vec()),
    };
    let attribute_len = RTA_HEADER_LEN + octets.len();
    let total = NLMSG_HEADER_LEN + RTMSG_LEN + attribute_len;
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_ne_bytes());
    message.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    let prefix_len = (octets.len() * 8) as u8;
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
    message.extend_from_slice(&[family, prefix_len, 0, 0, 0, 0, 0, 0]);
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&(attribute_len as u16).to_ne_bytes());
    message.extend_from_slice(&RTA_DST.to_ne_bytes());
    message.extend_from_slice(&octets);
    message
}

/// The output interface of the route in the kernel's reply, or the error it sent.
fn parse_reply(reply: &[u8]) -> io::Result<u32> {
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed rtnetlink reply");
    let header = reply.get(..NLMSG_HEADER_LEN).ok_or_else(malformed)?;
    let message_len = u32_at(header, 0).ok_or_else(malformed)? as usize;
    let kind = u16_at(header, 4).ok_or_else(malformed)?;
    let message = reply.get(..message_len).ok_or_else(malformed)?;
    match kind {
        NLMSG_ERROR => {
            let errno = i32_at(message, NLMSG_HEADER_LEN).ok_or_else(malformed)?;
            Err(io::Error::from_raw_os_error(errno.wrapping_neg()))
        }
        RTM_NEWROUTE => {
            let attributes = message
                .get(NLMSG_HEADER_LEN + RTMSG_LEN..)
                .ok_or_else(malformed)?;
            let mut oif = None;
            for attribute in Attributes(attributes) {
                let (kind, value) = attribute.ok_or_else(malformed)?;
                if kind == RTA_OIF {
                    oif = Some(u32_at(value, 0).ok_or_else(malformed)?);
                    break;
                }
            }
            oif.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the kernel's route names no interface",
                )
            })
        }
        _ => Err(malformed()),
    }
}

/// Adds what the announcements in `buf` (one read from the subscribed socket) concern to
/// `changes`: the interfaces whose link or addresses changed, whether one appeared, and
/// whether a route that can carry multicast changed. What cannot be read is "anything".
pub(crate) fn read_changes(buf: &[u8], changes: &mut InterfaceChanges) {
    let mut rest = buf;
    while !rest.is_empty() {
        let Some(len) = u32_at(rest, 0).map(|l| l as usize) else {
            changes.everything = true;
            return;
        };
        let (Some(kind), Some(message)) = (u16_at(rest, 4), rest.get(..len)) else {
            changes.everything = true;
            return;
        };
        if len < NLMSG_HEADER_LEN {
            changes.everything = true;
            return;
        }
        let body = &message[NLMSG_HEADER_LEN..];
        let understood = match kind {
            RTM_NEWLINK | RTM_DELLINK => u32_at(body, IFINFOMSG_INDEX).map(|index| {
                changes.touch(index);
                changes.appeared |= kind == RTM_NEWLINK;
            }),
            RTM_NEWADDR | RTM_DELADDR => u32_at(body, IFADDRMSG_INDEX).map(|index| {
                changes.touch(index);
                changes.appeared |= kind == RTM_NEWADDR;
            }),
            RTM_NEWROUTE | RTM_DELROUTE => route_family_if_multicast(body).map(|family| {
                if let Some(v6) = family {
                    changes.routes[usize::from(v6)] = true;
                }
            }),
            _ => Some(()), // NLMSG_DONE, NLMSG_NOOP, others: nothing a group depends on
        };
        if understood.is_none() {
            changes.everything = true;
            return;
        }
        rest = rest.get(((len + 3) & !3).min(rest.len())..).unwrap_or(&[]);
    }
}

/// For a route announcement (rtmsg and its attributes): Some(Some(v6)) when its
/// destination can cover multicast groups (the default route, or a prefix overlapping
/// 224.0.0.0/4 or ff00::/8), Some(None) when it cannot, None when it cannot be read.
fn route_family_if_multicast(body: &[u8]) -> Option<Option<bool>> {
    let family = i32::from(*body.first()?);
    let prefix_len = u32::from(*body.get(1)?);
    let mut destination = [0u8; 16];
    for attribute in Attributes(body.get(RTMSG_LEN..)?) {
        let (kind, value) = attribute?;
        if kind == RTA_DST {
            let n = value.len().min(16);
            destination[..n].copy_from_slice(&value[..n]);
        }
    }
    Some(match family {
        libc::AF_INET => {
            let network = Ipv4Addr::new(
                destination[0],
                destination[1],
                destination[2],
                destination[3],
            );
            overlaps(
                u128::from(u32::from(network)) << 96,
                prefix_len,
                0xe0 << 120,
                4,
            )
            .then_some(false)
        }
        libc::AF_INET6 => overlaps(
            u128::from(Ipv6Addr::from(destination)),
            prefix_len,
            0xff << 120,
            8,
        )
        .then_some(true),
        _ => None,
    })
}

/// Whether two prefixes (left-aligned in 128 bits) share an address.
fn overlaps(a: u128, a_len: u32, b: u128, b_len: u32) -> bool {
    let shorter = a_len.min(b_len).min(128);
    let mask = if shorter == 0 {
        0
    } else {
        u128::MAX << (128 - shorter)
    };
    a & mask == b & mask
}

/// The attributes (rtattr: length, type, value) of a message, in order; an item is None
/// where they stop making sense.
struct Attributes<'a>(&'a [u8]);

impl<'a> Iterator for Attributes<'a> {
    type Item = Option<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.len() < RTA_HEADER_LEN {
            return None;
        }
        let len = usize::from(u16_at(self.0, 0)?);
        let kind = u16_at(self.0, 2)?;
        let Some(value) = self
            .0
            .get(RTA_HEADER_LEN..len)
            .filter(|_| len >= RTA_HEADER_LEN)
        else {
            self.0 = &[];
            return Some(None);
        };
        self.0 = self
            .0
            .get(((len + 3) & !3).min(self.0.len())..)
            .unwrap_or(&[]);
        Some(Some((kind, value)))
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = request("ff02::1".parse().unwrap());
        assert_eq!(r.len(), 16 + 12 + 4 + 16);
        assert_eq!(u32_at(&r, 0), Some(48));
        assert_eq!(u16_at(&r, 4), Some(RTM_GETROUTE));
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[17], 128);
        assert_eq!(u16_at(&r, 28), Some(20));
        assert_eq!(u16_at(&r, 30), Some(RTA_DST));
        assert_eq!(&r[32..34], &[0xff, 0x02]);
    }

    /// One announcement: a netlink header of `kind` around `body`.
    fn announcement(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HEADER_LEN];
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        let len = (NLMSG_HEADER_LEN + body.len()) as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m
    }

    fn link(kind: u16, index: u32) -> Vec<u8> {
        let mut body = vec![0u8; 16]; // ifinfomsg
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        announcement(kind, &body)
    }

    fn route(family: i32, destination: &[u8], prefix_len: u8) -> Vec<u8> {
        let mut body = vec![family as u8, prefix_len, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
        if !destination.is_empty() {
            body.extend_from_slice(&((RTA_HEADER_LEN + destination.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&RTA_DST.to_ne_bytes());
            body.extend_from_slice(destination);
        }
        announcement(RTM_NEWROUTE, &body)
    }

    fn changes_of(buf: &[u8]) -> InterfaceChanges {
        let mut changes = InterfaceChanges::default();
        read_changes(buf, &mut changes);
        changes
    }

    #[test]
    fn announcements_name_what_they_concern() {
        let mut burst = link(RTM_NEWLINK, 7);
        burst.extend(link(RTM_DELLINK, 9));
        burst.extend(link(RTM_DELLINK, 7));
        let mut address = vec![libc::AF_INET as u8, 24, 0, 0];
        address.extend_from_slice(&3u32.to_ne_bytes());
        burst.extend(announcement(RTM_DELADDR, &address));
        let c = changes_of(&burst);
        assert_eq!(c.indexes, vec![7, 9, 3]);
        assert!(c.appeared && !c.everything && c.routes == [false; 2]);
        assert!(!changes_of(&link(RTM_DELLINK, 4)).appeared);
        // Routes: only those whose destination can hold a group.
        let v4 = |d: [u8; 4], len| changes_of(&route(libc::AF_INET, &d, len)).routes;
        assert_eq!(v4([10, 0, 0, 0], 8), [false, false]);
        assert_eq!(v4([224, 0, 0, 0], 4), [true, false]);
        assert_eq!(v4([239, 1, 2, 0], 24), [true, false]);
        assert_eq!(v4([0, 0, 0, 0], 0), [true, false]); // the default route
        assert_eq!(
            changes_of(&route(libc::AF_INET, &[], 0)).routes,
            [true, false]
        );
        let mut fe80 = [0u8; 16];
        fe80[..2].copy_from_slice(&[0xfe, 0x80]);
        let mut ff00 = [0u8; 16];
        ff00[0] = 0xff;
        assert_eq!(
            changes_of(&route(libc::AF_INET6, &fe80, 64)).routes,
            [false, false]
        );
        assert_eq!(
            changes_of(&route(libc::AF_INET6, &ff00, 8)).routes,
            [false, true]
        );
        assert!(changes_of(&route(libc::AF_INET6, &ff00, 8))
            .indexes
            .is_empty());
    }

    #[test]
    fn unreadable_announcements_concern_everything() {
        let whole = link(RTM_NEWLINK, 7);
        for cut in 1..whole.len() {
            assert!(changes_of(&whole[..cut]).everything, "cut at {cut}");
        }
        let mut short = whole.clone();
        short[..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than a header
        assert!(changes_of(&short).everything);
        assert!(!changes_of(&whole).everything);
    }

    #[test]
    fn replies() {
        let mut ok = vec![0u8; 16 + 12];
        ok.extend_from_slice(&8u16.to_ne_bytes());
        ok.extend_from_slice(&RTA_DST.to_ne_bytes());
        ok.extend_from_slice(&[0; 4]);
        ok.extend_from_slice(&8u16.to_ne_bytes());
        ok.extend_from_slice(&RTA_OIF.to_ne_bytes());
        ok.extend_from_slice(&7u32.to_ne_bytes());
        let len = ok.len() as u32;
        ok[..4].copy_from_slice(&len.to_ne_bytes());
        ok[4..6].copy_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        assert_eq!(parse_reply(&ok).unwrap(), 7);

        let mut error = vec![0u8; 16 + 4];
        error[..4].copy_from_slice(&20u32.to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-libc::ENETUNREACH).to_ne_bytes());
        assert_eq!(
            parse_reply(&error).unwrap_err().raw_os_error(),
            Some(libc::ENETUNREACH)
        );
        for cut in 0..ok.len() - 1 {
            assert!(parse_reply(&ok[..cut]).is_err(), "{cut}");
        }
    }
}
