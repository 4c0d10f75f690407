//! A leg of the relay: one interface for one IP version, and whether it is usable now.
//!
//! An interface that goes down (a VLAN bounced, a NIC reset), or is deleted and made
//! again under the same name, takes only its own leg down: the relay says so once, counts
//! what would have gone there as `down`, keeps relaying on the other legs, and opens the
//! leg again when the interface is back (looked at once a second). A leg whose sends are
//! refused (ENOBUFS: a full queue, an egress filter, a zero-limit qdisc) is waited for
//! once, briefly; after that its datagrams are dropped as `refused` without waiting
//! until it takes one again.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::limits::LinkAddress;
use super::stats::Drop;
use super::tap::{self, Arrival, Tap};

/// How long one send may wait for a full queue (only while the leg is not refusing).
const SEND_WAIT: Duration = Duration::from_millis(2);
/// How often a leg's interface is looked at (down: is it back? up: is it still there,
/// and the same interface?).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct Leg {
    pub interface: String,
    pub v6: bool,
    /// The exact groups joined there (for snooping switches).
    exact: Vec<IpAddr>,
    /// None while the leg is down.
    tap: Option<Tap>,
    /// This relay's own address there (for `source = "relay"`), as of the last open.
    pub own: Option<IpAddr>,
    /// The last send was refused after waiting: the next ones do not wait.
    refusing: bool,
}

impl Leg {
    /// Opens the leg; at start (and reload) the interface must exist.
    pub fn open(interface: &str, v6: bool, exact: Vec<IpAddr>) -> Result<Leg, String> {
        let tap = Tap::open(interface, v6, &exact)?;
        let own = tap::own_address(tap.index, v6);
        Ok(Leg {
            interface: interface.to_owned(),
            v6,
            exact,
            tap: Some(tap),
            own,
            refusing: false,
        })
    }

    pub fn is_up(&self) -> bool {
        self.tap.is_some()
    }

    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.tap.as_ref().map(Tap::fd)
    }

    /// The interface's link-layer address (zeros while down or where it has none).
    pub fn address(&self) -> LinkAddress {
        self.tap
            .as_ref()
            .map_or(LinkAddress::default(), |t| t.address)
    }

    /// The next packet, or None when none is waiting; an error takes the leg down.
    pub fn receive(&mut self, buf: &mut [u8]) -> Option<Arrival> {
        let tap = self.tap.as_ref()?;
        match tap.receive(buf) {
            Ok(arrival) => arrival,
            Err(e) => {
                self.go_down(&format!("cannot receive: {e}"));
                None
            }
        }
    }

    /// Sends a whole IP packet to `group`, or says why it did not go.
    pub fn send(&mut self, packet: &[u8], group: IpAddr) -> Result<(), (Drop, String)> {
        let Some(tap) = &self.tap else {
            return Err((Drop::Down, format!("{} is down", self.interface)));
        };
        let wait = if self.refusing {
            Duration::ZERO
        } else {
            SEND_WAIT
        };
        match tap.send(packet, group, wait) {
            Ok(()) => {
                if self.refusing {
                    self.refusing = false;
                    eprintln!("mcat relay: {} takes datagrams again", self.describe());
                }
                Ok(())
            }
            Err(e) if tap::is_queue_full(&e) => {
                if !self.refusing {
                    self.refusing = true;
                    eprintln!(
                        "mcat relay: {} refuses datagrams ({e}: a full queue, an egress filter \
                         or qdisc); dropping what goes there (refused) until it takes them again",
                        self.describe()
                    );
                }
                Err((Drop::Refused, format!("cannot send: {e}")))
            }
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                Err((Drop::TooBig, format!("cannot send: {e}")))
            }
            Err(e) if is_gone(&e) => {
                self.go_down(&format!("cannot send: {e}"));
                Err((Drop::Down, format!("cannot send: {e}")))
            }
            Err(e) => Err((Drop::SendError, format!("cannot send: {e}"))),
        }
    }

    /// Once every CHECK_EVERY: a down leg whose interface is up again is opened again; an
    /// up leg whose interface went down, vanished, or is another one under the same name
    /// (deleted and made again) goes down, or is opened again on the new one.
    pub fn check(&mut self) {
        let now = multicast::interface::resolve(&self.interface).ok();
        match (&self.tap, now) {
            (Some(_), None) => self.go_down("the interface is gone"),
            (Some(_), Some(i)) if !i.up => self.go_down("the interface is down"),
            (Some(t), Some(i)) if t.index != i.index => {
                self.go_down("the interface was made again");
                self.reopen();
            }
            (None, Some(i)) if i.up => self.reopen(),
            _ => {}
        }
    }

    fn reopen(&mut self) {
        if let Ok(tap) = Tap::open(&self.interface, self.v6, &self.exact) {
            self.own = tap::own_address(tap.index, self.v6);
            self.tap = Some(tap);
            self.refusing = false;
            eprintln!(
                "mcat relay: {} is back: relaying there again",
                self.describe()
            );
        }
    }

    fn go_down(&mut self, why: &str) {
        if self.tap.take().is_some() {
            eprintln!(
                "mcat relay: {} is down ({why}); relaying on the other legs, and there again \
                 when it is back",
                self.describe()
            );
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.interface,
            if self.v6 { "IPv6" } else { "IPv4" }
        )
    }
}

/// A send error that means the interface is not there to send on (down, or deleted).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO | libc::ENETUNREACH)
    )
}
