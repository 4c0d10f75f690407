//! Listeners that stay joined: interfaces deleted and created again (named, and the
//! kernel's choice), a link down for 5 s and up, an address changed under a sender.
//! Each test makes its own veth pair (mcr*) inside scripts/netns and removes it.
//!
//! The library notices changes through rtnetlink and joins again by itself; a handle
//! with rejoining off is checked alongside, deaf as the kernel leaves it, which shows the
//! test can tell the difference. How long the rejoin took is printed (`--nocapture`),
//! never asserted: the bounds below only keep a broken build from hanging.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{ip, require_private_netns, unique_port};
use multicast::{capabilities, Group, JoinOptions, MembershipStatus, Timeout};

const WAIT: Timeout = Timeout::After(Duration::from_secs(10));
const QUIET: Timeout = Timeout::After(Duration::from_millis(500));

/// A veth pair `name` <-> `name`p, up, with `addr`/24 on `name`.
fn make_link(name: &str, addr: &str) {
    ip(&format!("link add {name} type veth peer name {name}p"));
    ip(&format!("addr add {addr}/24 dev {name}"));
    ip(&format!("link set {name} up"));
    ip(&format!("link set {name}p up"));
}

/// Polls `condition` (the library updates state from its own thread); panics after 10 s.
fn wait_until(what: &str, condition: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// One datagram from a fresh handle sending through `iface` ("" for the kernel's
/// choice); loopback hands it to every member on that interface.
fn announce(group: &str, port: u16, iface: &str, text: &[u8]) {
    let sender = Group::join(group, port, iface).unwrap();
    sender.send(text).unwrap();
}

fn heard(g: &Group, timeout: Timeout) -> Option<Vec<u8>> {
    g.receive_message(timeout).unwrap().map(|m| m.data)
}

#[test]
fn named_interface_deleted_and_created_again() {
    require_private_netns();
    let (group, port) = ("239.210.0.1", unique_port());
    make_link("mcr0", "10.210.0.1");
    let listener = Group::join(group, port, "mcr0").unwrap();
    let no_rejoin = Group::join_with(
        group,
        port,
        &JoinOptions::default().interface("mcr0").rejoin(false),
    )
    .unwrap();
    assert_eq!(listener.membership_status(), MembershipStatus::Joined);
    announce(group, port, "mcr0", b"before");
    assert_eq!(heard(&listener, WAIT).as_deref(), Some(&b"before"[..]));
    assert_eq!(heard(&no_rejoin, WAIT).as_deref(), Some(&b"before"[..]));

    ip("link del mcr0");
    wait_until("the listener sees its interface gone", || {
        listener.membership_status() == MembershipStatus::InterfaceGone
    });
    make_link("mcr0", "10.210.0.1");
    let took = wait_until("the listener joins again", || {
        listener.rejoins() == 1 && listener.membership_status() == MembershipStatus::Joined
    });
    println!("named interface: joined again {took:?} after it was back up");
    assert_eq!(listener.interface().unwrap().name, "mcr0");

    announce(group, port, "mcr0", b"after");
    assert_eq!(heard(&listener, WAIT).as_deref(), Some(&b"after"[..]));
    // Without rejoining, the handle stays deaf, as the kernel leaves it.
    assert_eq!(heard(&no_rejoin, QUIET), None);
    assert_eq!(
        no_rejoin.membership_status(),
        MembershipStatus::InterfaceGone
    );
    assert_eq!(no_rejoin.rejoins(), 0);
    ip("link del mcr0");
}

#[test]
fn kernels_choice_follows_the_multicast_route() {
    require_private_netns();
    let (group, port) = ("239.211.0.1", unique_port());
    let route = "route add 239.211.0.0/16 dev mcr2";
    make_link("mcr2", "10.211.0.1");
    ip(route);
    let listener = Group::join(group, port, "").unwrap();
    announce(group, port, "", b"before");
    assert_eq!(heard(&listener, WAIT).as_deref(), Some(&b"before"[..]));
    if !capabilities().interface_events {
        // Without the kernel's announcements the route is not followed (documented):
        // the state cannot be known and stays as joined.
        ip("link del mcr2");
        assert_eq!(listener.membership_status(), MembershipStatus::Joined);
        assert_eq!(listener.rejoins(), 0);
        return;
    }

    // The group's own route goes with the interface: the next one is scripts/netns's
    // 224.0.0.0/4 via mc0, and the membership follows it there...
    ip("link del mcr2");
    wait_until("the listener follows the route to mc0", || {
        listener.rejoins() == 1
    });
    announce(group, port, "", b"via mc0");
    assert_eq!(heard(&listener, WAIT).as_deref(), Some(&b"via mc0"[..]));
    // ...and back when the interface and its route return.
    make_link("mcr2", "10.211.0.1");
    ip(route);
    let took = wait_until("the listener joins again", || {
        listener.rejoins() == 2 && listener.membership_status() == MembershipStatus::Joined
    });
    println!("kernel's choice: joined again {took:?} after the route was back");
    assert!(
        listener.interface().is_none(),
        "sends still follow the route"
    );
    announce(group, port, "", b"after");
    assert_eq!(heard(&listener, WAIT).as_deref(), Some(&b"after"[..]));
    ip("link del mcr2");
}

#[test]
fn link_down_for_five_seconds_and_up() {
    require_private_netns();
    let (group, port) = ("239.212.0.1", unique_port());
    make_link("mcr4", "10.212.0.1");
    let listener = Group::join(group, port, "mcr4").unwrap();
    ip("link set mcr4 down");
    wait_until("the listener sees its interface down", || {
        listener.membership_status() == MembershipStatus::InterfaceDown
    });
    thread::sleep(Duration::from_secs(5));
    ip("link set mcr4 up");
    wait_until("the listener sees its interface up", || {
        listener.membership_status() == MembershipStatus::Joined
    });
    announce(group, port, "mcr4", b"back");
    assert_eq!(heard(&listener, WAIT).as_deref(), Some(&b"back"[..]));
    // The kernel kept the membership while the link was down: nothing to join again.
    assert_eq!(listener.rejoins(), 0);
    ip("link del mcr4");
}

/// A DHCP renewal, say: the sender's interface gets a new address, and what it sends
/// leaves through that interface from the new address.
#[test]
fn sender_follows_an_address_change() {
    require_private_netns();
    let (group, port) = ("239.213.0.1", unique_port());
    make_link("mcr6", "10.213.0.1");
    let sender = Group::join(group, port, "mcr6").unwrap();
    let listener = Group::join(group, port, "mcr6").unwrap();
    sender.send(b"first").unwrap();
    let first = listener.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(first.source.ip().to_string(), "10.213.0.1");

    ip("addr del 10.213.0.1/24 dev mcr6");
    ip("addr add 10.213.0.2/24 dev mcr6");
    sender.send(b"renewed").unwrap();
    let renewed = listener.receive_message(WAIT).unwrap().unwrap();
    assert_eq!(renewed.data, b"renewed");
    assert_eq!(renewed.source.ip().to_string(), "10.213.0.2");
    assert_eq!(listener.membership_status(), MembershipStatus::Joined);
    ip("link del mcr6");
}

#[test]
fn reannounce_interval_is_checked() {
    let e = Group::join_with(
        "239.214.0.1",
        unique_port(),
        &JoinOptions::default().reannounce(Some(Duration::from_millis(500))),
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "reannounce interval must be at least 1 second (or none)"
    );
}
