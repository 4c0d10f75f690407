//! The kernel's routing choice for a group, asked of the kernel itself (rtnetlink
//! RTM_GETROUTE, what `ip route get` does).
//!
//! A link-scoped IPv6 group (`ff02::1`) joined without an interface must still be bound
//! with a zone, so the library needs the interface the kernel would pick for it: the
//! one Go's `ListenMulticastUDP` (and so scriptling's module) ends up on.

use std::io::{self, Read};
use std::net::IpAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const NLMSG_HEADER_LEN: usize = 16;
const RTMSG_LEN: usize = 12;
const RTA_HEADER_LEN: usize = 4;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
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
            let mut attributes = message
                .get(NLMSG_HEADER_LEN + RTMSG_LEN..)
                .ok_or_else(malformed)?;
            while attributes.len() >= RTA_HEADER_LEN {
                let len = usize::from(u16_at(attributes, 0).ok_or_else(malformed)?);
                let kind = u16_at(attributes, 2).ok_or_else(malformed)?;
                if len < RTA_HEADER_LEN {
                    return Err(malformed());
                }
                if kind == RTA_OIF {
                    return u32_at(attributes, RTA_HEADER_LEN).ok_or_else(malformed);
                }
                let aligned = (len + 3) & !3;
                attributes = attributes
                    .get(aligned.min(attributes.len())..)
                    .unwrap_or(&[]);
            }
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the kernel's route names no interface",
            ))
        }
        _ => Err(malformed()),
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
