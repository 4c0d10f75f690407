"""Authenticated groups: the Python binding's API, and interoperability with an
implementation of the wire format (docs/authentication.md) written here, independently of
the library, over the `cryptography` package's ChaCha20-Poly1305. Run inside scripts/netns."""

import ipaddress
import itertools
import os
import struct

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import libmulticast as multicast

if os.environ.get("MC_NETNS") != "1":
    pytest.exit("refusing to run outside scripts/netns (MC_NETNS is not 1)", returncode=2)

GROUP = "239.3.7.1"
KEY = bytes(range(32))
_ports = itertools.count(44000)


# The specification, as another implementation would write it.
def seal(key, key_id, sender, seq, group, port, message):
    header = struct.pack(">BBQI", 1, key_id, sender, seq)
    aad = header + ipaddress.ip_address(group).packed + struct.pack(">H", port)
    return header + ChaCha20Poly1305(key).encrypt(header[2:], message, aad)


def open_sealed(key, datagram, group, port):
    header = datagram[:14]
    version, key_id, sender, seq = struct.unpack(">BBQI", header)
    aad = header + ipaddress.ip_address(group).packed + struct.pack(">H", port)
    message = ChaCha20Poly1305(key).decrypt(header[2:], datagram[14:], aad)
    return version, key_id, sender, seq, message


@pytest.fixture
def port():
    return next(_ports)


def test_library_to_independent_implementation(port):
    with multicast.join(GROUP, port, key=KEY, key_id=5) as sender, multicast.join(GROUP, port) as tap:
        sender.send(b"first")
        sender.send("second")
        datagrams = [tap.receive(5)["data"] for _ in range(2)]
    opened = [open_sealed(KEY, d, GROUP, port) for d in datagrams]
    assert [(v, k, m) for v, k, _, _, m in opened] == [(1, 5, b"first"), (1, 5, b"second")]
    (_, _, sender_a, seq_a, _), (_, _, sender_b, seq_b, _) = opened
    assert sender_a == sender_b and seq_b == seq_a + 1
    assert all(len(d) == len(m) + multicast.AUTH_OVERHEAD for d, (*_, m) in zip(datagrams, opened))
    with pytest.raises(InvalidTag):
        open_sealed(KEY, datagrams[0], GROUP, port + 1)  # bound to the port
    with pytest.raises(InvalidTag):
        open_sealed(bytes(32), datagrams[0], GROUP, port)


def test_independent_implementation_to_library(port):
    with multicast.join(GROUP, port, key=KEY, key_id=5) as member, multicast.join(GROUP, port) as tap:
        first = seal(KEY, 5, 0xFEED, 0, GROUP, port, b"from python")
        tap.send(first)
        received = member.receive(5)
        assert received["data"] == b"from python"
        assert received["source"] == f"{os.environ['MC_TEST_ADDR']}:{port}"
        tap.send(first)  # a replay
        tap.send(seal(KEY, 5, 0xFEED, 2**32 - 1, GROUP, port, b"jump"))  # a huge sequence jump
        tap.send(seal(KEY, 5, 0xFEED, 1, GROUP, port, b"left behind"))
        tap.send(seal(KEY, 6, 0xFEED, 2, GROUP, port, b"unknown key id"))
        tap.send(seal(bytes(32), 5, 0xFEED, 3, GROUP, port, b"wrong key"))
        tap.send(seal(KEY, 5, 0xBEEF, 0, GROUP, port, b"marker"))
        assert member.receive(5)["data"] == b"jump"
        assert member.receive(5)["data"] == b"marker"
        assert member.auth_counters == {"unauthenticated": 1, "unknown_key": 1, "replayed": 2}


def test_rotation_and_previous_key(port):
    new_key = multicast.generate_key()
    assert len(new_key) == multicast.KEY_SIZE and new_key != multicast.generate_key()
    with multicast.join(GROUP, port, key=new_key, key_id=2, previous_key=KEY, previous_key_id=1) as member, \
            multicast.join(GROUP, port, key=KEY, key_id=1) as old:
        old.send(b"old key")
        assert member.receive(5)["data"] == b"old key"
        old.rotate_key(new_key, 2)
        old.send(b"new key")
        assert member.receive(5)["data"] == b"new key"
        member.rotate_key(multicast.generate_key(), 3, keep_previous=False)
        old.send(b"retired")
        member.send(b"marker")
        assert member.receive(5)["data"] == b"marker"
        assert member.auth_counters["unknown_key"] == 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"key": bytes(16)}, multicast.InvalidArgumentError, "options.group_key: a group key must be 32 bytes, not 16"),
    ({"key": "a string"}, multicast.InvalidArgumentError, "key must be bytes, not str"),
    ({"key": KEY, "key_id": 256}, multicast.InvalidArgumentError, "key_id must be an integer in 0..255, not 256"),
    ({"previous_key": KEY}, multicast.InvalidArgumentError, "a previous key needs a group key"),
    ({"key": KEY, "previous_key": KEY}, multicast.InvalidArgumentError, "same id (0)"),
])
def test_bad_keys(port, kwargs, error, message):
    with pytest.raises(error) as raised:
        multicast.join(GROUP, port, **kwargs)
    assert message in str(raised.value)
    assert "\\x00\\x01" not in str(raised.value) and "00010203" not in str(raised.value)


def test_plain_group_key_calls(port):
    with multicast.join(GROUP, port) as plain:
        assert plain.auth_counters == {"unauthenticated": 0, "unknown_key": 0, "replayed": 0}
        with pytest.raises(multicast.InvalidArgumentError, match="joined without a key"):
            plain.rotate_key(KEY, 1)
