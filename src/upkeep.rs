//! Keeping memberships in place while interfaces come and go.
//!
//! The kernel drops a socket's membership when its interface is deleted, and does not
//! restore it when an interface of the same name comes back (a VPN, USB or Wi-Fi adapter
//! reconnecting, a bridge rebuilt): the socket stays deaf. One process-wide thread
//! listens to the kernel's rtnetlink announcements of link, address and route changes,
//! and on each burst checks every live group: where the interface it should be on (by
//! name, address, index, or the kernel's multicast route) now has another index, or
//! was gone and is back, it joins again there. The thread sleeps in poll between
//! announcements, so an idle process spends no CPU on it.
//!
//! It also re-announces memberships at an interval where a group asks for it: a leave
//! and an immediate join, which makes the kernel send an unsolicited report, so a
//! snooping switch without a querier keeps forwarding the group.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::interface::{self, Interface};
use crate::membership::Membership;
use crate::route;
use crate::sys;

/// Whether a group's membership is in place now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipStatus {
    /// Joined on an interface that is up: datagrams to the group arrive.
    Joined,
    /// Joined, but the interface is down: nothing arrives until it is up again (the
    /// kernel keeps the membership and announces it again then).
    InterfaceDown,
    /// The interface is gone (deleted, or no multicast route is left): nothing arrives.
    /// With rejoining on, the group joins again as soon as it is back.
    InterfaceGone,
}

/// How the group's interface was named, so it can be found again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The kernel's multicast route for the group, followed when it changes.
    Route,
    /// A name, an address or (IPv6 zones) an index as text, resolved as at join.
    Spec(String),
    /// A kernel index: once that interface is gone it cannot come back.
    Index(u32),
}

/// What the upkeep thread needs of a group; the group holds the only strong reference.
#[derive(Debug)]
pub(crate) struct Watched {
    socket: Arc<RwLock<Option<Socket>>>,
    group: IpAddr,
    wanted: Wanted,
    rejoin: bool,
    reannounce: Option<Duration>,
    state: Mutex<State>,
    rejoins: AtomicU64,
    // sys::fork_generation() at join: a forked child never touches its parent's groups
    // (their socket is shared with the parent, and their locks may be held by parent
    // threads that do not exist in the child).
    generation: u64,
}

#[derive(Debug)]
struct State {
    membership: Membership,
    // The index the membership is on now (0: unknown, for the kernel's choice at join).
    index: u32,
    status: MembershipStatus,
    next_announce: Option<Instant>,
}

impl Watched {
    pub(crate) fn new(
        socket: Arc<RwLock<Option<Socket>>>,
        membership: Membership,
        wanted: Wanted,
        rejoin: bool,
        reannounce: Option<Duration>,
    ) -> Arc<Watched> {
        let index = match (&membership.interface, &wanted) {
            (Some(i), _) => i.index,
            (None, Wanted::Route) => route::interface_for(membership.group).unwrap_or(0),
            (None, _) => 0,
        };
        let watched = Arc::new(Watched {
            socket,
            group: membership.group,
            wanted,
            rejoin,
            reannounce,
            state: Mutex::new(State {
                membership,
                index,
                status: MembershipStatus::Joined,
                next_announce: reannounce.map(|every| Instant::now() + every),
            }),
            rejoins: AtomicU64::new(0),
            generation: sys::fork_generation(),
        });
        register(&watched);
        watched
    }

    /// The membership as it stands (for leaving it and for the interface it is on).
    pub(crate) fn membership(&self) -> Membership {
        self.lock().membership.clone()
    }

    pub(crate) fn status(&self) -> MembershipStatus {
        self.lock().status
    }

    pub(crate) fn rejoins(&self) -> u64 {
        self.rejoins.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the membership in line with the interfaces as they are now, and
    /// re-announces it when due. Returns when it next wants to be called, if ever.
    fn refresh(&self, now: Instant) -> Option<Instant> {
        if sys::fork_generation() != self.generation {
            return None;
        }
        let found = self.find();
        let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
        let socket = guard.as_ref()?;
        let mut state = self.lock();
        state.status = match found {
            None => MembershipStatus::InterfaceGone,
            Some(found) => {
                let moved =
                    found.index != state.index || state.status == MembershipStatus::InterfaceGone;
                if !moved {
                    up_or_down(&found)
                } else if self.rejoin && self.join_on(socket, &mut state, &found) {
                    self.rejoins.fetch_add(1, Ordering::Relaxed);
                    up_or_down(&found)
                } else {
                    // Not where the interface is now: nothing arrives.
                    MembershipStatus::InterfaceGone
                }
            }
        };
        if state.status == MembershipStatus::Joined {
            if let (Some(every), Some(due)) = (self.reannounce, state.next_announce) {
                if now >= due {
                    // A leave and an immediate join: the kernel reports the group anew.
                    let _ = state.membership.leave_on(socket, state.index);
                    let _ = state.membership.join_on(socket, state.index);
                    state.next_announce = Some(now + every);
                }
            }
        }
        state.next_announce
    }

    /// The interface the group should be on now, if it exists.
    fn find(&self) -> Option<Interface> {
        let v6 = self.group.is_ipv6();
        match &self.wanted {
            Wanted::Route => {
                let index = route::interface_for(self.group).ok()?;
                interface::resolve_index_for(index, v6).ok()
            }
            Wanted::Spec(spec) => interface::resolve_for(spec, v6).ok(),
            Wanted::Index(index) => interface::resolve_index_for(*index, v6).ok(),
        }
    }

    /// Leaves the old interface (gone already, most likely) and joins on `found`.
    fn join_on(&self, socket: &Socket, state: &mut State, found: &Interface) -> bool {
        if state.index != 0 {
            let _ = state.membership.leave_on(socket, state.index);
        }
        if state.membership.join_on(socket, found.index).is_err() {
            return false;
        }
        state.index = found.index;
        if state.membership.interface.is_some() {
            state.membership.interface = Some(found.clone());
            let _ = state.membership.point_sends(socket);
        }
        true
    }
}

fn up_or_down(found: &Interface) -> MembershipStatus {
    if found.up {
        MembershipStatus::Joined
    } else {
        MembershipStatus::InterfaceDown
    }
}

// ---- the process-wide thread ----

// The live groups. Held only for a push or a copy, never across a system call, so a
// fork is unlikely to catch it held (a child that then joined would wait for ever).
static REGISTRY: Mutex<Vec<Weak<Watched>>> = Mutex::new(Vec::new());
// sys::fork_generation() of the process whose upkeep thread runs: a forked child has no
// such thread until it joins a group of its own.
static THREAD_GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);

fn register(watched: &Arc<Watched>) {
    {
        let mut groups = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|g| g.strong_count() > 0);
        groups.push(Arc::downgrade(watched));
    }
    let generation = sys::fork_generation();
    let running = THREAD_GENERATION.load(Ordering::Acquire);
    if running == generation
        || THREAD_GENERATION
            .compare_exchange(running, generation, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    let started = subscribe().and_then(|events| {
        std::thread::Builder::new()
            .name("libmulticast-upkeep".into())
            .stack_size(256 * 1024)
            .spawn(move || run(events))
    });
    if started.is_err() {
        // Without it groups still work, they only do not rejoin; the next join tries again.
        THREAD_GENERATION.store(running, Ordering::Release);
    }
}

/// An rtnetlink socket that hears link, address and route changes.
fn subscribe() -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW.cloexec(),
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    // Bound first: bind sets the first 32 groups from its address, clearing any added.
    sys::bind_netlink(socket.as_fd())?;
    for group in [
        libc::RTNLGRP_LINK,
        libc::RTNLGRP_IPV4_IFADDR,
        libc::RTNLGRP_IPV6_IFADDR,
        libc::RTNLGRP_IPV4_ROUTE,
        libc::RTNLGRP_IPV6_ROUTE,
    ] {
        sys::set_int_option(
            socket.as_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            group as libc::c_int,
        )?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn run(events: Socket) {
    let mut next: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let wait = next.map(|at| at.saturating_duration_since(Instant::now()));
        // An error here (EINTR) only means "look again".
        let _ = sys::wait_readable(events.as_fd(), wait);
        // Drain the burst (a re-created interface brings several announcements); an
        // overrun (ENOBUFS) also means "something changed".
        while events.recv(sys::as_uninit_mut(&mut buf)).is_ok() {}
        next = refresh_all(Instant::now());
    }
}

/// Refreshes every live group; returns the earliest re-announcement due.
fn refresh_all(now: Instant) -> Option<Instant> {
    let groups: Vec<Arc<Watched>> = {
        let mut groups = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|g| g.strong_count() > 0);
        groups.iter().filter_map(Weak::upgrade).collect()
    };
    groups.iter().filter_map(|g| g.refresh(now)).min()
}
