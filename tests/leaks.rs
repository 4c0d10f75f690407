//! Descriptor leaks over join/close cycles. The count is the whole process's, so this
//! binary holds this one test: no other test can open a socket while it counts.

mod common;

use common::{open_fds, require_private_netns, unique_port};
use multicast::Group;

#[test]
fn no_descriptor_leak_over_join_close_cycles() {
    require_private_netns();
    let port = unique_port();
    // The first join starts the process's one upkeep thread and its rtnetlink socket
    // (src/upkeep.rs), which stay: count from after it.
    drop(Group::join("239.1.1.12", port, "").unwrap());
    let before = open_fds();
    for _ in 0..300 {
        let g = Group::join("239.1.1.12", port, "").unwrap();
        g.close().unwrap();
    }
    for _ in 0..100 {
        drop(Group::join("239.1.1.12", port, "").unwrap());
    }
    assert_eq!(open_fds(), before);
}
