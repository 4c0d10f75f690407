//! Sending one datagram: size checks, the send budget, and what a failure means.

use std::sync::PoisonError;
use std::time::Instant;

use super::sealed::with_sealing_buffer;
use super::Group;
use crate::auth;
use crate::error::{Error, ErrorKind, Result};
use crate::message;
use crate::sys;

impl Group {
    /// Sends `data` (0 to [`message::MAX_MESSAGE_SIZE`] bytes) to the group as one datagram.
    /// A closed group fails with the closed error before the size is looked at, as Go's
    /// `net.UDPConn` and scriptling do.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        let guard = self.read_socket("send")?;
        let socket = self.open_socket_or(&guard, "send")?;
        self.check_size(data.len())?;
        self.spend([data.len()])?;
        let sent = match &self.sealed {
            Some(sealed) => {
                let mut sender = sealed.sender(); // until the datagram is sent (see there)
                with_sealing_buffer(|datagram| {
                    sealed.seal(&mut sender, data, datagram)?;
                    Ok::<_, Error>(sys::send_to(socket, datagram, &self.destination))
                })?
            }
            None => sys::send_to(socket, data, &self.destination),
        };
        match sent {
            Ok(_) => Ok(()),
            Err(_) if self.is_closed() => Err(Error::closed("send")),
            Err(e) => Err(self.send_error(&e)),
        }
    }

    /// Sends JSON text re-encoded as Go's `encoding/json` writes it (see
    /// [`message::canonical_json`]): scriptling's dict messages.
    pub fn send_json(&self, json: &str) -> Result<()> {
        self.send(&message::canonical_json(json)?)
    }

    /// The largest message a caller may send: the datagram limit less sealing's overhead.
    pub(super) fn max_payload(&self) -> usize {
        self.max_message - self.sealed.as_ref().map_or(0, |_| auth::OVERHEAD)
    }

    pub(super) fn check_size(&self, len: usize) -> Result<()> {
        if self.sealed.is_some() && len > self.max_payload() {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "message of {len} bytes is larger than an authenticated group's {}-byte \
                     limit (the UDP limit less {} bytes of sealing)",
                    self.max_payload(),
                    auth::OVERHEAD
                ),
            ));
        }
        message::check_size_for(len, self.max_payload())
    }

    /// How many datagrams of these sizes the send budget allows now (all, without one);
    /// `ErrorKind::RateLimited` when it allows none.
    pub(super) fn spend(&self, sizes: impl IntoIterator<Item = usize>) -> Result<usize> {
        let sizes = sizes.into_iter();
        match &self.budget {
            None => Ok(sizes.count()),
            Some(budget) => budget
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(sizes, Instant::now()),
        }
    }

    pub(super) fn send_error(&self, err: &std::io::Error) -> Error {
        let interface = self.interface();
        let iface = interface.as_ref().map(|i| i.name.as_str());
        match (err, iface) {
            (e, Some(name)) if sys::is_network_down(e) => Error::io(
                &format!(
                    "send failed: interface {name} is down; bring it up ({}) or name another interface",
                    sys::link_up_hint(name)
                ),
                err,
            ),
            (e, None) if sys::is_unreachable(e) => {
                let route = sys::multicast_route_hint(self.group);
                Error::io(
                    &format!(
                        "send failed: no route to the group; name an interface or add a \
                         multicast route ({route})"
                    ),
                    err,
                )
            }
            _ => Error::io("send failed", err),
        }
    }
}
