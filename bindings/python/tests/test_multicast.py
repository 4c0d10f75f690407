"""pytest tests of the Python binding, run inside scripts/netns."""

import itertools
import os
import pathlib
import re
import sys
import threading
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import multicast  # noqa: E402

if os.environ.get("MC_NETNS") != "1":
    pytest.exit("refusing to run outside scripts/netns (MC_NETNS is not 1)", returncode=2)

_ports = itertools.count(43000)
ADDR = os.environ.get("MC_TEST_ADDR", "")


@pytest.fixture
def group():
    g = multicast.join("239.3.0.1", next(_ports))
    yield g
    g.close()


def test_round_trip_and_properties(group):
    assert group.group_addr == "239.3.0.1"
    assert group.local_addr == f"239.3.0.1:{group.port}"
    group.send("Hello group!")
    msg = group.receive(timeout=5)
    assert msg == {"data": b"Hello group!", "source": f"{ADDR}:{group.port}"}


def test_send_kinds(group):
    for message, want in [
        (b"\x00\x01\xff", b"\x00\x01\xff"),
        ("héllo", "héllo".encode()),
        ({"node": "worker-1", "action": "heartbeat"}, b'{"action":"heartbeat","node":"worker-1"}'),
        ([1, "a", 2.0, "<&>"], b'[1,"a",2,"\\u003c\\u0026\\u003e"]'),
        (42, b"42"),
        (b"", b""),
    ]:
        group.send(message)
        assert group.receive(timeout=5)["data"] == want


def test_limits(group):
    with pytest.raises(multicast.MessageTooLargeError, match="65508 bytes"):
        group.send(b"x" * (multicast.MAX_MESSAGE_SIZE + 1))
    group.send(b"y" * multicast.MAX_MESSAGE_SIZE)
    assert len(group.receive(timeout=5)["data"]) == multicast.MAX_MESSAGE_SIZE


def test_timeout_returns_none(group):
    start = time.monotonic()
    assert group.receive(timeout=0.1) is None
    assert time.monotonic() - start >= 0.1
    with pytest.raises(multicast.InvalidArgumentError, match="NaN"):
        group.receive(timeout=float("nan"))


@pytest.mark.parametrize("args,error,message", [
    (("192.168.1.1", 9999), multicast.NotMulticastError, "address 192.168.1.1 is not a multicast address"),
    (("garbage", 9999), multicast.InvalidArgumentError, "invalid multicast address"),
    (("239.1.1.1", 0), multicast.InvalidArgumentError, "port must be between 1 and 65535"),
    (("239.1.1.1", 65536), multicast.InvalidArgumentError, "port must be between 1 and 65535"),
    (("239.1.1.1", "80"), multicast.InvalidArgumentError, "port must be between 1 and 65535"),
    (("239.1.1.1", 9999, "eth-nope"), multicast.InterfaceError, "interface not found: eth-nope"),
    (("239.1.1.1\0", 9999), multicast.InvalidArgumentError, "NUL"),
    ((None, 9999), multicast.InvalidArgumentError, "must be a string"),
])
def test_join_errors(args, error, message):
    with pytest.raises(error, match=re.escape(message)) as info:
        multicast.join(*args)
    assert isinstance(info.value, multicast.MulticastError)


def test_interface_by_name_and_address():
    port = next(_ports)
    with multicast.join("239.3.0.2", port, os.environ["MC_TEST_IFACE"]) as a, \
            multicast.join("239.3.0.2", port, interface=ADDR) as b:
        a.send("x")
        assert b.receive(timeout=5)["data"] == b"x"


def test_close_wakes_blocked_receiver_and_is_idempotent(group):
    errors = []

    def wait():
        try:
            group.receive(timeout=0)
        except multicast.ClosedError as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.1)
    group.close()
    t.join(timeout=2)
    assert not t.is_alive() and len(errors) == 1
    group.close()
    with pytest.raises(multicast.ClosedError, match="send failed: group is closed"):
        group.send("x")
    with pytest.raises(multicast.ClosedError, match="receive failed: group is closed"):
        group.receive(timeout=1)


def test_context_manager_closes():
    with multicast.join("239.3.0.3", next(_ports)) as g:
        pass
    with pytest.raises(multicast.ClosedError):
        g.send("x")


def test_version_matches_cargo():
    cargo = (pathlib.Path(__file__).resolve().parents[3] / "Cargo.toml").read_text()
    assert multicast.version() == re.search(r'^version = "(.*)"', cargo, re.M).group(1)


def test_join_options_and_event_loop():
    import select
    import socket
    port = next(_ports)
    g = multicast.join("239.4.1.1", port, ttl=9, receive_buffer=4096,
                       interface_index=socket.if_nametoindex(os.environ["MC_TEST_IFACE"]))
    quiet = multicast.join("239.4.1.1", port, loopback=False)
    try:
        assert g.receive_buffer_size == 8192
        sock = socket.socket(fileno=os.dup(g.fileno()))
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 9
        sock.close()  # closes the duplicate only
        assert select.select([g], [], [], 0)[0] == []
        quiet.send("unheard")
        g.send("heard")
        assert select.select([g], [], [], 5)[0] == [g]
        assert g.receive_now()["data"] == b"heard"
        assert g.receive_now() is None
    finally:
        g.close()
        quiet.close()
    with pytest.raises(multicast.ClosedError):
        g.fileno()


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"ttl": 256}, {"ttl": "1"}, {"receive_buffer": -1},
                                    {"interface": "mc0", "interface_index": 1}])
def test_join_option_errors(kwargs):
    with pytest.raises(multicast.InvalidArgumentError):
        multicast.join("239.4.1.2", next(_ports), **kwargs)


def test_gro_handle_receives_each_datagram():
    port = next(_ports)
    with multicast.join("239.4.1.3", port, gro=True) as g:
        for text in ("one", "two", "three"):
            g.send(text)
        assert [g.receive(timeout=5)["data"] for _ in range(3)] == [b"one", b"two", b"three"]


def test_ipv6_and_source_specific():
    port = next(_ports)
    with multicast.join("ff05::1:12", port, os.environ["MC_TEST_IFACE"]) as g:
        g.send("six")
        msg = g.receive(timeout=5)
        assert msg["data"] == b"six" and msg["source"].startswith("[fd00:203::")
    port = next(_ports)
    with multicast.join("232.1.2.5", port, os.environ["MC_TEST_IFACE"], source=os.environ["MC_TEST_ADDR_B"]) as only_b, \
            multicast.join("232.1.2.5", port, os.environ["MC_TEST_ADDR"]) as from_a, \
            multicast.join("232.1.2.5", port, os.environ["MC_TEST_ADDR_B"]) as from_b:
        from_a.send("a")
        from_b.send("b")
        assert only_b.receive(timeout=5)["data"] == b"b"
        assert only_b.receive(timeout=0.3) is None
    with pytest.raises(multicast.InvalidArgumentError):
        multicast.join("232.1.2.5", port, source="fd00::1")


def test_batches_round_trip():
    port = next(_ports)
    with multicast.join("239.4.1.4", port, gro=True) as g:
        messages = [f"m{i:03d}" for i in range(100)] + [b"\x00\xff", ""]
        assert g.send_batch(messages) == len(messages)
        got = []
        while len(got) < len(messages):
            batch = g.receive_batch(timeout=5, count=16)
            assert batch, "timed out"
            got += [m["data"] for m in batch]
        assert got == [m.encode() if isinstance(m, str) else m for m in messages]
        assert g.receive_batch(timeout=0.1) == []
