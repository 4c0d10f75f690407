//! The site link: relays exchange datagrams over unicast UDP, each sealed with the
//! authenticated groups' ChaCha20-Poly1305 (multicast::auth) under the site key, so a
//! host without the key can neither read what crosses nor inject into a site.
//!
//! The sealed message (a frame) carries the datagram and what a receiving relay needs to
//! put it back on its LAN as it was and to deliver it once:
//!
//! ```text
//! offset  size  field
//! 0       1     frame version: 1
//! 1       1     hops left: how many more relays may pass it on to their peers
//! 2       8     origin: the id of the relay that took it from its LAN, big-endian
//! 10      4     the origin's sequence number for it, big-endian
//! 14      1     TTL (IPv6 hop limit) to send it with
//! 15      1     type of service / traffic class
//! 16      16    sender address (IPv4 in the first 4 bytes)
//! 32      16    group address (IPv4 in the first 4 bytes)
//! 48      n     the UDP header (ports, length, checksum) and payload as sent
//! ```
//!
//! Sealed as a datagram of the authenticated-groups format (docs/authentication.md) to
//! the destination `[::]:0`, which no group has, so a relay frame is never mistaken for
//! a group's datagram or the other way round.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use multicast::auth::{self, Destination, Keyring, Rejection, Replays};

use super::config::Site;
use super::limits::Bucket;
use super::packet::{Datagram, UDP_HEADER};

const FRAME_VERSION: u8 = 1;
pub const FRAME_HEADER: usize = 48;
/// The largest sealed datagram a relay sends or reads.
const MAX_SEALED: usize = 65_507;

fn site_destination() -> Destination {
    Destination {
        group: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        port: 0,
    }
}

/// A frame received from a peer, opened.
pub struct Frame<'a> {
    pub hops_left: u8,
    pub datagram: Datagram<'a>,
}

/// Why a site datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteDrop {
    /// From an address that is not a listed peer.
    UnknownPeer,
    /// Over the peer's rate limit.
    PeerRate,
    /// Not sealed under the site key (forged, altered, another key).
    Unauthenticated,
    /// Seen before: a replay, or a copy that came a second way through the mesh.
    Duplicate,
    /// Authentic but not a frame this relay reads.
    Malformed,
}

pub struct SiteLink {
    socket: UdpSocket,
    keys: Keyring,
    /// This relay's sealing identity (sender id and sequence; a new id before a wrap).
    sealer: auth::Sender,
    /// Sealing identities heard: each sealed datagram accepted once.
    replays: Replays,
    pub peers: Vec<Peer>,
    pub hop_limit: u8,
    pub forward_ttl_1: bool,
    sealed: Vec<u8>,
    frame: Vec<u8>,
    by_address: HashMap<SocketAddr, usize>,
}

/// What outlives a reload: this relay's identity as an origin (and its sequence for the
/// datagrams it takes in from its LAN), and the origins heard, so that every datagram is
/// delivered once however many ways it came.
pub struct Origins {
    pub this: auth::Sender,
    pub seen: Replays,
}

pub struct Peer {
    pub name: String,
    pub address: SocketAddr,
    pub bucket: Bucket,
}

impl SiteLink {
    pub fn open(site: &Site, peer_rate: f64) -> Result<SiteLink, String> {
        let socket = UdpSocket::bind(site.listen)
            .map_err(|e| format!("cannot listen for peers on {}: {e}", site.listen))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("cannot make the site socket non-blocking: {e}"))?;
        // Room for a burst from every peer while the relay is busy sending (the kernel
        // caps it at net.core.rmem_max).
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        let keys = Keyring::new(&site.key, None).map_err(|e| e.message().to_owned())?;
        let peers: Vec<Peer> = site
            .peers
            .iter()
            .map(|(name, address)| Peer {
                name: name.clone(),
                address: *address,
                bucket: Bucket::new(peer_rate),
            })
            .collect();
        let by_address = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.address, i))
            .collect();
        Ok(SiteLink {
            socket,
            keys,
            sealer: auth::Sender::new().map_err(|e| e.message().to_owned())?,
            replays: Replays::default(),
            peers,
            hop_limit: site.hop_limit,
            forward_ttl_1: site.forward_ttl_1,
            sealed: Vec::with_capacity(MAX_SEALED),
            frame: Vec::with_capacity(MAX_SEALED),
            by_address,
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.socket)
    }

    pub fn local_address(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Takes in a datagram from this relay's LAN: a new origin sequence number, marked
    /// as seen (so it is not delivered here again when it comes back), hop limit full.
    pub fn originate(
        &mut self,
        origins: &mut Origins,
        datagram: &Datagram,
        ttl: u8,
    ) -> Result<(), String> {
        let (origin, seq) = origins
            .this
            .next_nonce()
            .map_err(|e| e.message().to_owned())?;
        origins.seen.accept(origin, seq);
        self.write_frame(origin, seq, self.hop_limit - 1, ttl, datagram);
        self.seal()
    }

    /// Seals the frame [`receive`](Self::receive) returned last again, to pass it on to
    /// other peers with `hops_left`.
    pub fn pass_on(&mut self, hops_left: u8) -> Result<(), String> {
        self.frame[1] = hops_left;
        self.seal()
    }

    fn write_frame(&mut self, origin: u64, seq: u32, hops_left: u8, ttl: u8, d: &Datagram) {
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&[FRAME_VERSION, hops_left]);
        f.extend_from_slice(&origin.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[ttl, d.tos]);
        f.extend_from_slice(&padded(d.source));
        f.extend_from_slice(&padded(d.group));
        f.extend_from_slice(d.udp);
    }

    fn seal(&mut self) -> Result<(), String> {
        if self.frame.len() + auth::OVERHEAD > MAX_SEALED {
            return Err(format!(
                "{} bytes do not fit a site datagram",
                self.frame.len() - FRAME_HEADER
            ));
        }
        let (sender, seq) = self
            .sealer
            .next_nonce()
            .map_err(|e| e.message().to_owned())?;
        auth::seal_into(
            &self.keys,
            site_destination(),
            sender,
            seq,
            &self.frame,
            &mut self.sealed,
        );
        Ok(())
    }

    /// Sends the datagram sealed last to every peer but `except`; returns the peers it
    /// reached (an error on one peer does not stop the others).
    pub fn send_sealed(&self, except: Option<usize>) -> Vec<(usize, io::Result<()>)> {
        (0..self.peers.len())
            .filter(|i| Some(*i) != except)
            .map(|i| (i, self.send_to(i)))
            .collect()
    }

    fn send_to(&self, peer: usize) -> io::Result<()> {
        loop {
            match self.socket.send_to(&self.sealed, self.peers[peer].address) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next datagram from a peer: None when none waits; Some(Err) for one dropped.
    pub fn receive<'b>(
        &mut self,
        origins: &mut Origins,
        buf: &'b mut [u8],
    ) -> io::Result<Option<(usize, Result<Frame<'b>, SiteDrop>)>> {
        let (n, from) = match self.socket.recv_from(buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let Some(&peer) = self.by_address.get(&from) else {
            return Ok(Some((usize::MAX, Err(SiteDrop::UnknownPeer))));
        };
        if !self.peers[peer].bucket.take() {
            return Ok(Some((peer, Err(SiteDrop::PeerRate))));
        }
        let sealed = &mut buf[..n];
        let opened = match auth::open(&self.keys, site_destination(), sealed) {
            Ok(opened) => opened,
            Err(Rejection::Replayed) => return Ok(Some((peer, Err(SiteDrop::Duplicate)))),
            Err(_) => return Ok(Some((peer, Err(SiteDrop::Unauthenticated)))),
        };
        if !self.replays.accept(opened.sender, opened.seq) {
            return Ok(Some((peer, Err(SiteDrop::Duplicate))));
        }
        let frame = &buf[opened.message];
        Ok(Some((peer, self.read_frame(origins, frame))))
    }

    fn read_frame<'b>(
        &mut self,
        origins: &mut Origins,
        f: &'b [u8],
    ) -> Result<Frame<'b>, SiteDrop> {
        if f.len() < FRAME_HEADER + UDP_HEADER || f[0] != FRAME_VERSION {
            return Err(SiteDrop::Malformed);
        }
        let origin = u64::from_be_bytes(f[2..10].try_into().unwrap_or_default());
        let seq = u32::from_be_bytes(f[10..14].try_into().unwrap_or_default());
        let group = unpadded(&f[32..48]);
        let source = match group {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(f[16], f[17], f[18], f[19])),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(&f[16..32]).unwrap_or_default(),
            )),
        };
        let udp = &f[FRAME_HEADER..];
        if !group.is_multicast() || usize::from(u16::from_be_bytes([udp[4], udp[5]])) != udp.len() {
            return Err(SiteDrop::Malformed);
        }
        if !origins.seen.accept(origin, seq) {
            return Err(SiteDrop::Duplicate);
        }
        self.frame.clear();
        self.frame.extend_from_slice(f);
        Ok(Frame {
            hops_left: f[1],
            datagram: Datagram {
                source,
                group,
                ttl: f[14],
                tos: f[15],
                udp,
            },
        })
    }
}

/// An address in 16 bytes: IPv6 as it is, IPv4 in the first four, zeros after.
fn padded(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => {
            let mut out = [0; 16];
            out[..4].copy_from_slice(&a.octets());
            out
        }
    }
}

/// The group address of a frame: IPv4 when the first octet is in 224/4 and the rest
/// zero (an IPv6 multicast address starts with 0xff).
fn unpadded(bytes: &[u8]) -> IpAddr {
    let v4 = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
    if v4.is_multicast() && bytes[4..].iter().all(|b| *b == 0) {
        IpAddr::V4(v4)
    } else {
        IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).unwrap_or_default(),
        ))
    }
}
