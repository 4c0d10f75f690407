//! The IP and UDP headers of a multicast datagram as the relay reads them from an
//! interface (the network-layer packet an AF_PACKET datagram socket hands over) and
//! writes them back out: a router's view, so the datagram keeps its sender's address,
//! ports, payload and UDP checksum, and loses one TTL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const UDP: u8 = 17;
pub const UDP_HEADER: usize = 8;

/// A UDP datagram to a multicast group, borrowed from the packet it arrived in.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub source: IpAddr,
    pub group: IpAddr,
    pub ttl: u8,
    /// IPv4's type of service or IPv6's traffic class (DSCP and ECN), kept as it came.
    pub tos: u8,
    /// The UDP header and payload as on the wire (checksum included).
    pub udp: &'a [u8],
}

impl Datagram<'_> {
    pub fn source_port(&self) -> u16 {
        u16::from_be_bytes([self.udp[0], self.udp[1]])
    }
    pub fn port(&self) -> u16 {
        u16::from_be_bytes([self.udp[2], self.udp[3]])
    }
    pub fn payload(&self) -> &[u8] {
        &self.udp[UDP_HEADER..]
    }
}

/// Why a packet is not a datagram the relay considers.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not UDP to a multicast address (the socket filter lets few of these through).
    Other,
    /// A fragment: the relay sees packets, not reassembled datagrams.
    Fragment,
    /// Lengths that do not add up.
    Malformed,
}

/// Reads an IPv4 or IPv6 packet.
pub fn parse(packet: &[u8]) -> Result<Datagram<'_>, Skip> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => parse_v4(packet),
        Some(6) => parse_v6(packet),
        _ => Err(Skip::Other),
    }
}

fn parse_v4(packet: &[u8]) -> Result<Datagram<'_>, Skip> {
    let header = usize::from(packet[0] & 0x0f) * 4;
    if packet.len() < 20 || header < 20 || packet.len() < header {
        return Err(Skip::Malformed);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let group = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    if packet[9] != UDP || !group.is_multicast() {
        return Err(Skip::Other);
    }
    // More fragments, or an offset: part of a datagram.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    if total < header + UDP_HEADER || total > packet.len() {
        return Err(Skip::Malformed);
    }
    let udp = &packet[header..total];
    check_udp_length(udp)?;
    Ok(Datagram {
        source: IpAddr::V4(Ipv4Addr::new(
            packet[12], packet[13], packet[14], packet[15],
        )),
        group: IpAddr::V4(group),
        ttl: packet[8],
        tos: packet[1],
        udp,
    })
}

fn parse_v6(packet: &[u8]) -> Result<Datagram<'_>, Skip> {
    if packet.len() < 40 {
        return Err(Skip::Malformed);
    }
    let group = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).unwrap_or_default());
    // Extension headers (a hop-by-hop option, a fragment header) are not followed.
    if packet[6] != UDP || !group.is_multicast() {
        return Err(Skip::Other);
    }
    let length = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    if length < UDP_HEADER || 40 + length > packet.len() {
        return Err(Skip::Malformed);
    }
    let udp = &packet[40..40 + length];
    check_udp_length(udp)?;
    Ok(Datagram {
        source: IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(&packet[8..24]).unwrap_or_default(),
        )),
        group: IpAddr::V6(group),
        ttl: packet[7],
        tos: (packet[0] << 4) | (packet[1] >> 4),
        udp,
    })
}

fn check_udp_length(udp: &[u8]) -> Result<(), Skip> {
    match usize::from(u16::from_be_bytes([udp[4], udp[5]])) == udp.len() {
        true => Ok(()),
        false => Err(Skip::Malformed),
    }
}

/// Fills in the UDP checksum of a packet that arrived with it still to be computed.
pub fn complete_checksum(packet: &mut [u8]) {
    let Ok(d) = parse(packet) else {
        return;
    };
    let (source, group, length) = (d.source, d.group, d.udp.len());
    let start = d.udp.as_ptr() as usize - packet.as_ptr() as usize;
    let udp = &mut packet[start..start + length];
    udp[6..8].fill(0);
    let sum = udp_checksum(source, group, udp);
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// Writes `datagram` as a packet from `source` with `ttl` into `out` (cleared first).
/// The UDP checksum is kept when the source is the sender's and recomputed otherwise.
pub fn build(out: &mut Vec<u8>, datagram: &Datagram, source: IpAddr, ttl: u8) {
    out.clear();
    let length = datagram.udp.len();
    match (source, datagram.group) {
        (IpAddr::V4(source), IpAddr::V4(group)) => {
            let total = (20 + length) as u16;
            out.extend_from_slice(&[0x45, datagram.tos]);
            out.extend_from_slice(&total.to_be_bytes());
            // Identification 0 with DF clear is fine for an unfragmented datagram.
            out.extend_from_slice(&[0, 0, 0, 0, ttl, UDP, 0, 0]);
            out.extend_from_slice(&source.octets());
            out.extend_from_slice(&group.octets());
            let sum = checksum(&[&out[..20]], 0);
            out[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(source), IpAddr::V6(group)) => {
            let tc = datagram.tos;
            out.extend_from_slice(&[0x60 | (tc >> 4), tc << 4, 0, 0]);
            out.extend_from_slice(&(length as u16).to_be_bytes());
            out.extend_from_slice(&[UDP, ttl]);
            out.extend_from_slice(&source.octets());
            out.extend_from_slice(&group.octets());
        }
        _ => unreachable!("a datagram's source and group are of one family"),
    }
    let udp_at = out.len();
    out.extend_from_slice(datagram.udp);
    let v4_without_checksum = datagram.group.is_ipv4() && datagram.udp[6..8] == [0, 0];
    if source != datagram.source && !v4_without_checksum {
        out[udp_at + 6..udp_at + 8].fill(0);
        let sum = udp_checksum(source, datagram.group, &out[udp_at..]);
        out[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The UDP checksum over the pseudo-header and `udp` (its checksum field zero).
pub fn udp_checksum(source: IpAddr, group: IpAddr, udp: &[u8]) -> u16 {
    let ((s, s_len), (g, g_len)) = (octets(source), octets(group));
    let length = (udp.len() as u32).to_be_bytes();
    let sum = checksum(
        &[&s[..s_len], &g[..g_len], &[0, 0, 0, UDP], &length, udp],
        0,
    );
    // 0 means "no checksum" in UDP; a computed 0 is sent as all ones.
    if sum == 0 {
        0xffff
    } else {
        sum
    }
}

/// An address's octets in a fixed array (4 or 16 of them used): no allocation per packet.
fn octets(address: IpAddr) -> ([u8; 16], usize) {
    let mut out = [0; 16];
    match address {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (out, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

/// The Internet checksum (RFC 1071) of the parts, in order, as one byte string. Every
/// part but the last has an even length.
fn checksum(parts: &[&[u8]], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for part in parts {
        let mut words = part.chunks_exact(2);
        for w in &mut words {
            sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The link-layer address of a group on Ethernet (RFC 1112, RFC 2464).
pub fn ethernet_group_address(group: IpAddr) -> [u8; 6] {
    match group {
        IpAddr::V4(g) => {
            let o = g.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(g) => {
            let o = g.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_v4(payload: &[u8]) -> Vec<u8> {
        let source: IpAddr = "10.1.0.5".parse().unwrap();
        let group: IpAddr = "239.1.2.3".parse().unwrap();
        let mut udp = vec![0x13, 0x88, 0x27, 0x0f];
        udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        let sum = udp_checksum(source, group, &udp);
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        let d = Datagram {
            source,
            group,
            ttl: 4,
            tos: 0,
            udp: &udp,
        };
        let mut packet = Vec::new();
        build(&mut packet, &d, source, 4);
        packet
    }

    #[test]
    fn a_built_packet_reads_back_and_verifies() {
        let packet = sample_v4(b"hello");
        assert_eq!(checksum(&[&packet[..20]], 0), 0, "IPv4 header checksum");
        let d = parse(&packet).unwrap();
        assert_eq!(
            (d.source_port(), d.port(), d.ttl, d.payload()),
            (5000, 9999, 4, &b"hello"[..])
        );
        assert_eq!(
            udp_checksum(d.source, d.group, d.udp),
            0xffff,
            "a valid checksum sums to zero"
        );
        // Another source: the checksum is recomputed and verifies.
        let mut out = Vec::new();
        build(&mut out, &d, "10.2.0.1".parse().unwrap(), 3);
        let again = parse(&out).unwrap();
        assert_eq!(udp_checksum(again.source, again.group, again.udp), 0xffff);
        assert_eq!(again.ttl, 3);
    }

    #[test]
    fn fragments_and_bad_lengths_are_skipped() {
        let mut packet = sample_v4(b"hello");
        packet[6] = 0x20; // more fragments
        assert_eq!(parse(&packet).unwrap_err(), Skip::Fragment);
        let mut packet = sample_v4(b"hello");
        packet[25] = 99; // UDP length
        assert_eq!(parse(&packet).unwrap_err(), Skip::Malformed);
        let packet = sample_v4(b"hello");
        assert_eq!(parse(&packet[..25]).unwrap_err(), Skip::Malformed);
        assert_eq!(parse(&[]).unwrap_err(), Skip::Other);
        assert_eq!(parse(&[0x45]).unwrap_err(), Skip::Malformed);
    }

    #[test]
    fn group_mac_addresses() {
        assert_eq!(
            ethernet_group_address("239.129.2.3".parse().unwrap()),
            [1, 0, 0x5e, 1, 2, 3]
        );
        assert_eq!(
            ethernet_group_address("ff02::1:ff00:fb".parse().unwrap()),
            [0x33, 0x33, 0xff, 0, 0, 0xfb]
        );
    }
}
