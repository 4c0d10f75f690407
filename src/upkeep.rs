//! Keeping memberships in place while interfaces come and go.
//!
//! The kernel drops a socket's membership when its interface is deleted, and does not
//! restore it when an interface of the same name comes back (a VPN, USB or Wi-Fi adapter
//! reconnecting, a bridge rebuilt): the socket stays deaf. One process-wide thread
//! listens to the kernel's rtnetlink announcements of link, address and route changes,
//! and on each burst checks the live groups it concerns (the announcements name the
//! interface: a group is looked at again when its own interface changed, when an
//! interface appears while its own is gone, or when a route that carries multicast
//! changes and it follows the kernel's route): where the interface it should be on (by
//! name, address, index, or the kernel's multicast route) now has another index, or
//! was gone and is back, it joins again there. The thread sleeps in poll between
//! announcements, so an idle process spends no CPU on it, and interfaces coming and
//! going elsewhere on the host (a veth per container) cost it a read and a parse.
//!
//! Where the kernel announces nothing (the portable path, see `platform`), the same
//! check runs when a group's membership state is asked for.
//!
//! It also re-announces memberships at an interval where a group asks for it: a leave
//! and an immediate join, which makes the kernel send an unsolicited report, so a
//! snooping switch without a querier keeps forwarding the group.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::interface::{Interface, Interfaces};
use crate::membership::Membership;
use crate::platform::{self, InterfaceChanges};
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
            (None, Wanted::Route) => platform::route_interface(membership.group).unwrap_or(0),
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

    /// The membership as it stands, to leave it.
    pub(crate) fn membership(&self) -> Membership {
        self.lock().membership.clone()
    }

    /// The interface the membership is on now, if one was named (or routed) at join.
    pub(crate) fn interface(&self) -> Option<Interface> {
        self.lock().membership.interface.clone()
    }

    pub(crate) fn status(&self) -> MembershipStatus {
        self.check_without_events();
        self.lock().status
    }

    pub(crate) fn rejoins(&self) -> u64 {
        self.check_without_events();
        self.rejoins.load(Ordering::Relaxed)
    }

    /// Where the kernel announces no interface changes (the portable path), a group is
    /// checked, and joined again if need be, when its state is asked for.
    fn check_without_events(&self) {
        if !platform::capabilities().interface_events {
            self.refresh(Instant::now(), &mut Burst::default(), true);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a burst of announcements can have moved this group's interface.
    fn concerned_by(&self, changes: &InterfaceChanges) -> bool {
        let state = self.lock();
        let family_routes = changes.routes[usize::from(self.group.is_ipv6())];
        changes.everything
            || state.index == 0
            || changes.indexes.contains(&state.index)
            || (state.status == MembershipStatus::InterfaceGone && changes.appeared)
            || (self.wanted == Wanted::Route && family_routes)
    }

    /// Brings the membership in line with the interfaces as they are now (as `burst`
    /// lists them) when `moved` (it may have), and re-announces it when due. Returns
    /// when it next wants to be called, if ever.
    fn refresh(&self, now: Instant, burst: &mut Burst, moved: bool) -> Option<Instant> {
        if sys::fork_generation() != self.generation {
            return None;
        }
        let found = if moved {
            self.find(burst)
        } else {
            Found::Unknown
        };
        let guard = self.socket.read().unwrap_or_else(PoisonError::into_inner);
        let socket = guard.as_ref()?;
        let mut state = self.lock();
        state.status = match found {
            Found::Unknown => state.status,
            Found::Gone => MembershipStatus::InterfaceGone,
            Found::Here(found) => {
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
            return state.next_announce;
        }
        // Not joined: nothing to re-announce until the interface is back, which the
        // kernel announces. A due deadline returned here would wake the thread at once,
        // again and again (it spun a core while an interface was down or gone).
        None
    }

    /// The interface the group should be on now.
    fn find(&self, burst: &mut Burst) -> Found {
        let v6 = self.group.is_ipv6();
        let index = match &self.wanted {
            Wanted::Route => match burst.route(self.group) {
                Ok(index) => index,
                // No route lookup on this system: the kernel's choice cannot be followed.
                Err(std::io::ErrorKind::Unsupported) => return Found::Unknown,
                Err(_) => return Found::Gone,
            },
            Wanted::Index(index) => *index,
            Wanted::Spec(_) => 0,
        };
        let Some(interfaces) = burst.interfaces() else {
            return Found::Unknown; // cannot list them now: leave the group as it is
        };
        let found = match &self.wanted {
            Wanted::Spec(spec) => interfaces.resolve(spec, v6),
            _ => interfaces.resolve_index(index, v6),
        };
        found.map_or(Found::Gone, Found::Here)
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

/// What one burst of announcements is checked against, looked up once for all groups:
/// the interfaces, and the multicast route of each group address asked about. Work per
/// burst then grows with the groups only by a lookup in memory each.
#[derive(Default)]
struct Burst {
    interfaces: Option<Option<Interfaces>>,
    routes: HashMap<IpAddr, Result<u32, std::io::ErrorKind>>,
}

impl Burst {
    fn interfaces(&mut self) -> Option<&Interfaces> {
        self.interfaces
            .get_or_insert_with(|| Interfaces::list().ok())
            .as_ref()
    }

    fn route(&mut self, group: IpAddr) -> Result<u32, std::io::ErrorKind> {
        *self
            .routes
            .entry(group)
            .or_insert_with(|| platform::route_interface(group).map_err(|e| e.kind()))
    }
}

/// Where the interface a group should be on stands now.
enum Found {
    Here(Interface),
    Gone,
    /// This system cannot tell (the kernel's route, on the portable path).
    Unknown,
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

// The sending end of the upkeep thread's wake-up socket pair: a new group with a
// re-announcement interval wakes the thread, so its first deadline is counted in.
static WAKER: Mutex<Option<Socket>> = Mutex::new(None);

fn register(watched: &Arc<Watched>) {
    {
        let mut groups = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|g| g.strong_count() > 0);
        groups.push(Arc::downgrade(watched));
    }
    ensure_thread();
    if watched.reannounce.is_some() {
        if let Some(waker) = WAKER
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = waker.send(&[1]);
        }
    }
}

/// Starts this process's upkeep thread unless it runs: it waits for the kernel's
/// announcements (where there are any), wake-ups and re-announcement deadlines.
fn ensure_thread() {
    let generation = sys::fork_generation();
    let running = THREAD_GENERATION.load(Ordering::Acquire);
    if running == generation
        || THREAD_GENERATION
            .compare_exchange(running, generation, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    let started = sys::waker_pair().and_then(|(waker, woken)| {
        waker.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        // None on the portable path: the thread then serves re-announcements only.
        let events = platform::subscribe_interface_changes().ok();
        std::thread::Builder::new()
            .name("libmulticast-upkeep".into())
            .stack_size(256 * 1024)
            .spawn(move || run(events, woken))?;
        // The join returns once the thread has made everything it needs, so a caller's
        // first sends and receives never share the CPU (or the allocator) with its start.
        waker.set_read_timeout(Some(Duration::from_secs(2)))?;
        waker.set_nonblocking(false)?;
        let _ = waker.recv(sys::as_uninit_mut(&mut [0u8; 1]));
        waker.set_nonblocking(true)?;
        Ok(waker)
    });
    match started {
        Ok(waker) => *WAKER.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker),
        // Without it groups still work, they only do not rejoin; the next join tries again.
        Err(_) => THREAD_GENERATION.store(running, Ordering::Release),
    }
}

fn run(events: Option<Socket>, woken: Socket) {
    let mut next: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let _ = woken.send(&[1]); // ready: ensure_thread waits for this
    loop {
        let wait = next.map(|at| at.saturating_duration_since(Instant::now()));
        // An error here (EINTR) only means "look again".
        let _ = match &events {
            Some(events) => sys::wait_readable_any(&[&woken, events], wait),
            None => sys::wait_readable(&woken, wait),
        };
        while woken.recv(sys::as_uninit_mut(&mut buf)).is_ok() {}
        let mut changes = InterfaceChanges::default();
        if let Some(events) = &events {
            read_burst(events, &mut buf, &mut changes);
        }
        next = refresh_all(Instant::now(), &changes);
    }
}

/// Drains the burst of announcements (a re-created interface brings several) into
/// `changes`; an overrun (ENOBUFS) lost some, so it concerns every group.
fn read_burst(events: &Socket, buf: &mut [u8], changes: &mut InterfaceChanges) {
    loop {
        match events.recv(sys::as_uninit_mut(buf)) {
            Ok(n) => platform::read_changes(&buf[..n], changes),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                // ENOBUFS: the kernel dropped announcements; read on, check everything.
                if changes.everything {
                    return; // a second error in one burst: not one that clears
                }
                changes.everything = true;
            }
        }
    }
}

/// Refreshes the live groups `changes` concern, and re-announces those due; returns the
/// earliest re-announcement due.
fn refresh_all(now: Instant, changes: &InterfaceChanges) -> Option<Instant> {
    let groups: Vec<Arc<Watched>> = {
        let mut groups = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|g| g.strong_count() > 0);
        groups.iter().filter_map(Weak::upgrade).collect()
    };
    let mut burst = Burst::default();
    groups
        .iter()
        .filter_map(|g| {
            let moved = !changes.is_empty() && g.concerned_by(changes);
            g.refresh(now, &mut burst, moved)
        })
        .min()
}
