"""pytest tests of the Python binding, run inside scripts/netns."""

import itertools
import os
import pathlib
import re
import sys
import threading
import time

import pytest

# The package under test: the source tree's (PYTHONPATH=bindings/python, as make test
# sets it) or an installed one (pip install ./bindings/python, run from elsewhere).
import libmulticast as multicast  # noqa: E402

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
    (("239.1.1.1", 9999, "10.9.9.9"), multicast.InterfaceError, "interface not found: 10.9.9.9"),
    (("239.1.1.1", 9999, "mc0 "), multicast.InterfaceError, "interface not found: mc0 "),
    ((" 239.1.1.1", 9999), multicast.InvalidArgumentError, "invalid multicast address"),
    (("239.1.1.1\n", 9999), multicast.InvalidArgumentError, "invalid multicast address"),
    (("[ff02::1%mc0", 9999), multicast.InvalidArgumentError, '"[ff02::1%mc0" is not an IPv4 or IPv6'),
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


@pytest.mark.parametrize("spelling", ["[ff02::1:9]", "[ff02::1:9%mc0]", "[ff05::1:9]"])
def test_go_spellings_of_ipv6_groups(spelling):
    if "%" not in spelling and spelling.startswith("[ff02") and "interface_events" not in multicast.capabilities():
        # The portable path looks up no route: a link-scoped group needs its interface.
        with pytest.raises(multicast.InterfaceError, match="name the interface"):
            multicast.join(spelling, next(_ports))
        return
    with multicast.join(spelling, next(_ports)) as g:
        g.send("spelled")
        assert g.receive(timeout=5)["data"] == b"spelled"


def test_interface_without_ipv4_joins_and_sends_by_index():
    port = next(_ports)
    with multicast.join("239.3.0.9", port, interface="mc1", loopback=False) as on_mc1, \
            multicast.join("239.3.0.9", port, interface=os.environ["MC_TEST_IFACE"], loopback=False) as on_mc0:
        on_mc1.send("via mc1")
        assert on_mc0.receive(timeout=5)["data"] == b"via mc1"
        on_mc0.send("via mc0")
        assert on_mc1.receive(timeout=5)["data"] == b"via mc0"


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
    expected = os.environ.get("MC_EXPECT_VERSION")  # set when the tests run outside the tree
    if not expected:
        cargo = (pathlib.Path(__file__).resolve().parents[3] / "Cargo.toml").read_text()
        expected = re.search(r'^version = "(.*)"', cargo, re.M).group(1)
    assert multicast.version() == expected


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


def _receive_batches(group, count):
    """The payloads of `count` datagrams, taken with receive_batch 16 at a time."""
    got = []
    while len(got) < count:
        batch = group.receive_batch(timeout=5, count=16)
        assert batch, "timed out"
        got += [m["data"] for m in batch]
    return got


def test_batches_round_trip():
    port = next(_ports)
    with multicast.join("239.4.1.4", port, gro=True) as g:
        messages = [f"m{i:03d}" for i in range(100)] + [b"\x00\xff", ""]
        assert g.send_batch(messages) == len(messages)
        got = _receive_batches(g, len(messages))
        assert got == [m.encode() if isinstance(m, str) else m for m in messages]
        assert g.receive_batch(timeout=0.1) == []


def test_send_batch_converts_each_item_as_send_does(group):
    items = [5, "é", b"x", bytearray(b"y"), 2.5, None, {"b": 1, "a": "<"}, ["l"], ""]
    assert group.send_batch(items) == len(items)
    got = _receive_batches(group, len(items))
    for item in items:
        group.send(item)
    one_by_one = [group.receive(timeout=5)["data"] for _ in items]
    assert got == one_by_one
    assert got[:3] == [b"5", "é".encode(), b"x"] and got[6] == b'{"a":"\\u003c","b":1}'


@pytest.mark.parametrize("single", [b"hi", "hi", bytearray(b"hi"), {"a": 1}])
def test_send_batch_refuses_a_single_message(group, single):
    with pytest.raises(TypeError, match="sequence of messages"):
        group.send_batch(single)
    assert group.receive(timeout=0.2) is None  # nothing went out


@pytest.mark.parametrize("count,size", [(0, 64), (1025, 64), (4, -1), (4, 65536), (4, 2**62), ("4", 64)])
def test_receive_batch_refuses_impossible_slots(group, count, size):
    group.send(b"kept")
    with pytest.raises(multicast.InvalidArgumentError):
        group.receive_batch(timeout=1, count=count, size=size)
    assert group.receive(timeout=5)["data"] == b"kept"


_SIGINT_CHILD = """
import signal, sys, time
# Python leaves SIGINT alone when it starts ignored (a background job of a script);
# a program that wants Ctrl-C installs the handler, as here.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {path!r})
import libmulticast as multicast
g = multicast.join("239.3.9.1", {port})
try:
    print("ready", flush=True)
    g.{call}
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.parametrize("call", ["receive(timeout=-1)", "receive(timeout=3600)", "receive_batch(timeout=3600)"])
def test_ctrl_c_interrupts_a_blocked_receive(call):
    import signal
    import subprocess
    code = _SIGINT_CHILD.format(path=str(pathlib.Path(multicast.__file__).parents[1]), port=next(_ports), call=call)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # into the blocking call (an earlier signal is handled all the same)
    child.send_signal(signal.SIGINT)
    try:
        out, _ = child.communicate(timeout=60)  # without the fix: an hour, or never
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail(f"{call}: SIGINT did not interrupt the receive")
    assert out.strip() == "interrupted"


def _wait_child(pid, limit=30):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"


def test_fork_child_closing_its_copy_leaves_the_parent_working():
    g = multicast.join("239.3.9.2", next(_ports))
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            with pytest.raises(multicast.ClosedError, match="inherited across fork"):
                g.send("from the child")
            g.close()
            del g  # the finaliser frees the child's copy, as at a normal exit
            import gc
            gc.collect()
        except BaseException:
            code = 1
        os._exit(code)
    assert _wait_child(pid) == 0
    g.send("parent")
    assert g.receive(timeout=5)["data"] == b"parent"
    g.close()


def test_fork_while_a_thread_receives_does_not_hang_the_child():
    g = multicast.join("239.3.9.3", next(_ports))
    got = []
    t = threading.Thread(target=lambda: got.append(g.receive(timeout=30)))
    t.start()
    time.sleep(0.2)
    pid = os.fork()
    if pid == 0:
        g.close()
        g.__del__()
        os._exit(0)
    assert _wait_child(pid) == 0
    g.send("wake")
    t.join()
    assert got and got[0]["data"] == b"wake"
    g.close()


def test_every_call_on_a_32_kib_thread_stack():
    errors = []

    def body():
        try:
            with multicast.join("239.3.9.4", next(_ports), gro=True) as g:
                g.send({"deep": [[[[1]]]]})
                g.send_batch([b"a", b"b", b"c"])
                assert g.receive(timeout=5)["data"] == b'{"deep":[[[[1]]]]}'
                assert len(g.receive_batch(timeout=5, count=1)) == 1
                assert len(g.receive_batch(timeout=5, count=100)) >= 1
                g.receive_now()
                g.fileno()
                with pytest.raises(multicast.NotMulticastError):
                    multicast.join("10.0.0.1", 9999)
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    old = threading.stack_size(32768)
    try:
        t = threading.Thread(target=body)
        t.start()
    finally:
        threading.stack_size(old)
    t.join()
    assert not errors, errors


def test_the_expected_package_is_under_test():
    """With MC_PYTHON_INSTALLED=1 (the installed-package suite, run from outside the
    checkout) the package and its library must come from site-packages, the bundled copy;
    otherwise the package is the source tree's."""
    package = pathlib.Path(multicast.__file__).resolve().parent
    if os.environ.get("MC_PYTHON_INSTALLED") == "1":
        assert "site-packages" in package.parts, package
        assert (package / "py.typed").is_file()
        assert multicast._lib._name == str(package / "libmulticast.so.0")
    else:
        assert package == pathlib.Path(__file__).resolve().parents[1] / "libmulticast"


def _ip(*args):
    import subprocess
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _make_link(name, addr):
    _ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
    _ip("addr", "add", addr + "/24", "dev", name)
    _ip("link", "set", name, "up")
    _ip("link", "set", name + "p", "up")


def _wait(condition, what):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def test_rejoins_when_the_interface_is_created_again():
    port = next(_ports)
    _make_link("mcp0", "10.217.0.1")
    try:
        with multicast.join("239.217.0.1", port, "mcp0") as listener, \
                multicast.join("239.217.0.1", port, "mcp0", rejoin=False) as deaf:
            assert (listener.membership, listener.rejoins) == ("joined", 0)
            _ip("link", "del", "mcp0")
            _wait(lambda: listener.membership == "interface_gone", "interface gone")
            _make_link("mcp0", "10.217.0.1")
            _wait(lambda: listener.membership == "joined" and listener.rejoins == 1, "joined again")
            with multicast.join("239.217.0.1", port, "mcp0") as sender:
                sender.send("after")
            assert listener.receive(timeout=10)["data"] == b"after"
            assert deaf.receive(timeout=0.5) is None
            assert (deaf.membership, deaf.rejoins) == ("interface_gone", 0)
    finally:
        _ip("link", "del", "mcp0")


@pytest.mark.parametrize("reannounce", [0, 0.5, 60.0, -1, float("nan"), "60", True, 2**32])
def test_reannounce_must_be_a_second_or_more(reannounce):
    with pytest.raises(multicast.InvalidArgumentError, match="reannounce"):
        multicast.join("239.217.0.2", next(_ports), reannounce=reannounce)


def test_membership_of_a_closed_group_raises(group):
    group.close()
    with pytest.raises(multicast.ClosedError):
        group.membership


def test_capabilities_are_what_the_suite_expects():
    names = {"drop_count", "packet_info", "gro", "gso", "batch_syscalls", "interface_events"}
    caps = multicast.capabilities()
    assert caps <= names
    expected = os.environ.get("MC_EXPECT_CAPABILITIES")
    if expected is not None:
        assert caps == (names if int(expected, 0) == 63 else set())


def test_send_budget_refuses_over_the_limit():
    with multicast.join("239.217.0.3", next(_ports), max_bytes_per_second=10) as g:
        with pytest.raises(multicast.RateLimitedError, match="10 bytes per second"):
            g.send("eleven byte")
    with multicast.join("239.217.0.3", next(_ports), max_datagrams_per_second=2) as g:
        assert g.send_batch([b"a", b"b", b"c", b"d"]) == 2


@pytest.mark.parametrize("limit", [-1, 2**32, 1.5, "10", True])
def test_send_budget_must_be_a_count(limit):
    with pytest.raises(multicast.InvalidArgumentError, match="max_datagrams_per_second"):
        multicast.join("239.217.0.4", next(_ports), max_datagrams_per_second=limit)
