//! The upkeep thread costs nothing while nothing happens, also after a group's interface
//! went down or away: it spun (2.4 to 4 s of CPU per 4 idle seconds) when a group with
//! a re-announcement interval lost its interface, since a due re-announcement it could
//! not make woke it again at once. A test binary of its own: no other test's interface
//! changes may give its thread work while it is measured.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{ip, require_private_netns, unique_port};
use multicast::{Group, JoinOptions, MembershipStatus};

/// CPU time the library's upkeep thread has used so far.
fn upkeep_cpu() -> Duration {
    let tick = 1.0 / clock_ticks();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("libmulticast-up") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the command's closing parenthesis: state is 3rd, utime 14th.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        return Duration::from_secs_f64(ticks * tick);
    }
    panic!("no libmulticast-upkeep thread in this process");
}

/// Clock ticks per second as the kernel counts thread CPU in /proc (USER_HZ).
fn clock_ticks() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

fn wait_for(what: &str, g: &Group, status: MembershipStatus) {
    let start = Instant::now();
    while g.membership_status() != status {
        assert!(start.elapsed() < Duration::from_secs(30), "never: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The upkeep thread's CPU over 3 idle seconds: a spinning thread takes most of them
/// even on a machine busy with other work; an idle one, a few milliseconds at most.
fn assert_idle(after: &str) {
    let before = upkeep_cpu();
    thread::sleep(Duration::from_secs(3));
    let used = upkeep_cpu() - before;
    println!("upkeep CPU over 3 idle seconds {after}: {used:?}");
    assert!(
        used < Duration::from_millis(300),
        "the upkeep thread used {used:?} of CPU in 3 idle seconds {after}"
    );
}

#[test]
fn upkeep_is_idle_after_the_interface_goes_down_or_away() {
    require_private_netns();
    ip("link add mcq0 type veth peer name mcq0p");
    ip("addr add 10.211.0.1/24 dev mcq0");
    ip("link set mcq0 up");
    ip("link set mcq0p up");
    let g = Group::join_with(
        "239.211.0.1",
        unique_port(),
        &JoinOptions::default()
            .interface("mcq0")
            .reannounce(Some(Duration::from_secs(1))),
    )
    .unwrap();
    wait_for("joined", &g, MembershipStatus::Joined);
    assert_idle("while joined");

    ip("link set mcq0 down");
    wait_for("interface down", &g, MembershipStatus::InterfaceDown);
    thread::sleep(Duration::from_millis(1500)); // a re-announcement falls due meanwhile
    assert_idle("with the interface down");

    ip("link del mcq0");
    wait_for("interface gone", &g, MembershipStatus::InterfaceGone);
    thread::sleep(Duration::from_millis(1500));
    assert_idle("with the interface gone");
}
