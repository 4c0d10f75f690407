"""libmulticast for Python: UDP multicast group messaging with the shape of
scriptling's ``scriptling.net.multicast`` module, over the C library through ctypes.

    import libmulticast
    with libmulticast.join("239.1.1.1", 9999) as group:
        group.send("Hello group!")
        msg = group.receive(timeout=5)   # {"data": bytes, "source": "ip:port"} or None

The shared library is the one named by $LIBMULTICAST_PATH, else the copy bundled in
this package (``pip install ./bindings/python``), else the source tree's build/lib
(after ``make lib``), else the system's library path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import os
import pathlib
import threading
import time
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, TypedDict

__all__ = [
    "join", "Group", "MulticastError", "InvalidArgumentError", "NotMulticastError",
    "InterfaceError", "MessageTooLargeError", "BufferTooSmallError", "InvalidJSONError",
    "ClosedError", "MulticastIOError", "InternalError", "MAX_MESSAGE_SIZE", "Message", "version",
    "capabilities", "RateLimitedError",
]

MAX_MESSAGE_SIZE = 65507
_SOURCE_MAX = 64
_RECEIVE_CAPACITY = 65535  # never truncates, and takes one system call


def _load() -> ctypes.CDLL:
    candidates = []
    if os.environ.get("LIBMULTICAST_PATH"):
        candidates.append(os.environ["LIBMULTICAST_PATH"])
    here = pathlib.Path(__file__).resolve().parent
    candidates.append(str(here / "libmulticast.so.0"))  # bundled by the wheel
    if len(here.parents) > 2:
        candidates.append(str(here.parents[2] / "build" / "lib" / "libmulticast.so"))
    found = ctypes.util.find_library("multicast")
    if found:
        candidates.append(found)
    for path in candidates:
        if os.path.exists(path) or not os.path.isabs(path):
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    raise ImportError("libmulticast not found: pip install ./bindings/python, run `make lib`, "
                      "or set LIBMULTICAST_PATH")


_lib = _load()
_group_p = ctypes.c_void_p
_lib.mc_join.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(_group_p)]
_lib.mc_send.argtypes = [_group_p, ctypes.c_void_p, ctypes.c_size_t]
_lib.mc_send_json.argtypes = [_group_p, ctypes.c_char_p]
_lib.mc_receive.argtypes = [_group_p, ctypes.c_double, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.POINTER(ctypes.c_size_t), ctypes.c_char_p, ctypes.c_size_t]
_lib.mc_close.argtypes = [_group_p]
_lib.mc_free.argtypes = [_group_p]
_lib.mc_free.restype = None
for _name in ("mc_group_addr", "mc_local_addr"):
    getattr(_lib, _name).argtypes = [_group_p]
    getattr(_lib, _name).restype = ctypes.c_char_p
_lib.mc_port.argtypes = [_group_p]
_lib.mc_last_error.restype = ctypes.c_char_p
_lib.mc_version.restype = ctypes.c_char_p


class _JoinOptions(ctypes.Structure):
    """mc_join_options, layout version 3 (MC_JOIN_OPTIONS_VERSION)."""
    _fields_ = [("version", ctypes.c_uint32), ("interface_name", ctypes.c_char_p),
                ("interface_index", ctypes.c_uint32), ("ttl", ctypes.c_int32),
                ("loopback", ctypes.c_bool), ("receive_buffer_size", ctypes.c_size_t),
                ("gro", ctypes.c_bool), ("packet_info", ctypes.c_bool),
                ("source_address", ctypes.c_char_p),
                ("rejoin", ctypes.c_bool), ("reannounce_seconds", ctypes.c_uint32),
                ("max_datagrams_per_second", ctypes.c_uint32), ("max_bytes_per_second", ctypes.c_uint32),
                ("group_key", ctypes.c_void_p), ("group_key_len", ctypes.c_size_t),
                ("previous_key", ctypes.c_void_p), ("previous_key_len", ctypes.c_size_t),
                ("group_key_id", ctypes.c_uint8), ("previous_key_id", ctypes.c_uint8)]


_JOIN_OPTIONS_VERSION = 3
# The C layouts: version 1 ends with source_address (56 bytes with 8-byte pointers, 32 with
# 4-byte ones), version 2 with max_bytes_per_second (72; 48), version 3 is the whole
# struct (112; 68). A field added on one side only would corrupt memory.
_POINTER_BYTES = ctypes.sizeof(ctypes.c_void_p)
assert (_JoinOptions.rejoin.offset, _JoinOptions.group_key.offset, ctypes.sizeof(_JoinOptions)) == \
    ((56, 72, 112) if _POINTER_BYTES == 8 else (32, 48, 68)), "mc_join_options mirror out of date"
#: Bytes in a group key (MC_GROUP_KEY_SIZE).
KEY_SIZE = 32
#: What sealing adds to each datagram of an authenticated group (MC_AUTH_OVERHEAD).
AUTH_OVERHEAD = 30
_lib.mc_join_options_init.argtypes = [ctypes.POINTER(_JoinOptions), ctypes.c_uint32]
_lib.mc_join_with_options.argtypes = [ctypes.c_char_p, ctypes.c_int32,
                                      ctypes.POINTER(_JoinOptions), ctypes.POINTER(_group_p)]
class _Datagram(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Received(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("capacity", ctypes.c_size_t), ("len", ctypes.c_size_t),
                ("source", ctypes.c_char * 64), ("destination", ctypes.c_char * 64),
                ("interface_index", ctypes.c_uint32)]


assert ctypes.sizeof(ctypes.c_void_p) != 8 or ctypes.sizeof(_Received) == 160, "mc_received mirror out of date"
_lib.mc_send_batch.argtypes = [_group_p, ctypes.POINTER(_Datagram), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
_lib.mc_receive_batch.argtypes = [_group_p, ctypes.c_double, ctypes.POINTER(_Received), ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.c_size_t)]
_lib.mc_fd.argtypes = [_group_p, ctypes.POINTER(ctypes.c_int)]
_lib.mc_receive_buffer_size.argtypes = [_group_p, ctypes.POINTER(ctypes.c_size_t)]
_lib.mc_membership.argtypes = [_group_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_uint64)]
_lib.mc_membership.restype = ctypes.c_int
_lib.mc_generate_key.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_lib.mc_rotate_key.argtypes = [_group_p, ctypes.c_uint8, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_bool]
_lib.mc_auth_counters.argtypes = [_group_p] + [ctypes.POINTER(ctypes.c_uint64)] * 3
_lib.mc_capabilities.argtypes = [ctypes.POINTER(ctypes.c_uint32)]
_lib.mc_capabilities.restype = ctypes.c_int
# mc_capability bits (never renumbered).
_CAPABILITIES = {1: "drop_count", 2: "packet_info", 4: "gro", 8: "gso", 16: "batch_syscalls",
                 32: "interface_events"}
# mc_membership_status, by value (never renumbered).
_MEMBERSHIP = {0: "joined", 1: "interface_down", 2: "interface_gone"}
for _name in ("mc_join", "mc_send", "mc_send_json", "mc_receive", "mc_close", "mc_join_options_init",
              "mc_join_with_options", "mc_fd", "mc_receive_buffer_size", "mc_send_batch",
              "mc_receive_batch", "mc_generate_key", "mc_rotate_key", "mc_auth_counters"):
    getattr(_lib, _name).restype = ctypes.c_int

_OK, _TIMEOUT = 0, 1

class Message(TypedDict):
    """A received datagram, the dict scriptling's module returns."""

    #: The datagram's bytes.
    data: bytes
    #: Its sender, "ip:port" ("[ip%zone]:port" for IPv6).
    source: str



class MulticastError(Exception):
    """A failed call; ``status`` is the C status name, the text libmulticast's message."""

    status = "MC_ERR"


class InvalidArgumentError(MulticastError, ValueError):
    status = "MC_ERR_INVALID_ARGUMENT"


class NotMulticastError(MulticastError, ValueError):
    status = "MC_ERR_NOT_MULTICAST"


class InterfaceError(MulticastError):
    status = "MC_ERR_INTERFACE"


class MessageTooLargeError(MulticastError, ValueError):
    status = "MC_ERR_MESSAGE_TOO_LARGE"


class BufferTooSmallError(MulticastError):
    status = "MC_ERR_BUFFER_TOO_SMALL"


class InvalidJSONError(MulticastError, ValueError):
    status = "MC_ERR_INVALID_JSON"


class ClosedError(MulticastError):
    status = "MC_ERR_CLOSED"


class MulticastIOError(MulticastError, OSError):
    status = "MC_ERR_IO"


class InternalError(MulticastError):
    status = "MC_ERR_INTERNAL"


class RateLimitedError(MulticastError):
    status = "MC_ERR_RATE_LIMITED"


_ERRORS = {-1: InvalidArgumentError, -2: NotMulticastError, -3: InterfaceError,
           -4: MessageTooLargeError, -5: BufferTooSmallError, -6: InvalidJSONError,
           -7: ClosedError, -8: MulticastIOError, -9: InternalError, -10: RateLimitedError}


def _check(status):
    # ctypes releases the GIL during the call but stays on this OS thread, so the
    # thread-local message read here is the one the failing call set.
    if status < 0:
        message = _lib.mc_last_error().decode("utf-8", "replace")
        raise _ERRORS.get(status, MulticastError)(message)
    return status


def _text(value, what):
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string")
    if "\0" in value:
        raise InvalidArgumentError(f"{what} contains a NUL character")
    return value.encode("utf-8")


# The longest a blocked receive on the main thread waits in one C call. The library keeps
# its deadline across signals (right for C and Go), so Python's own signal handlers, and
# with them KeyboardInterrupt, run only between calls: slices keep Ctrl-C prompt.
_SIGNAL_SLICE = 0.1


def _interruptible(timeout, call):
    """Runs a receive call with ``timeout`` seconds (< 0: no limit), on the main thread
    in slices so that signal handlers run; returns its status (raising on errors)."""
    if timeout == 0 or threading.current_thread() is not threading.main_thread():
        return _check(call(timeout))
    deadline = None if timeout < 0 else time.monotonic() + timeout
    while True:
        left = _SIGNAL_SLICE if deadline is None else min(_SIGNAL_SLICE, deadline - time.monotonic())
        status = _check(call(max(left, 0.0)))
        if status != _TIMEOUT or (deadline is not None and time.monotonic() >= deadline):
            return status


def _payload(message):
    """The bytes send() puts in a datagram for a non-JSON message."""
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    return str(message).encode("utf-8")


def _json_text(message):
    return json.dumps(message, allow_nan=False).encode("utf-8")


_scratch = threading.local()


def _receive_buffers():
    """This thread's receive buffers (a datagram's, a source's), made once: allocating
    and zeroing 64 KiB per receive cost more than the receive."""
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = (ctypes.create_string_buffer(_RECEIVE_CAPACITY),
                                      ctypes.create_string_buffer(_SOURCE_MAX))
    return buffers


class Group:
    """A joined group. Use ``close()`` or a ``with`` block; safe to share across threads."""

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._handle = handle
        self.group_addr = _lib.mc_group_addr(handle).decode()
        self.port = _lib.mc_port(handle)
        self.local_addr = _lib.mc_local_addr(handle).decode()

    def send(self, message: Any) -> None:
        """Sends str (UTF-8), bytes, or a dict/list (JSON-encoded as scriptling does,
        i.e. as Go's encoding/json writes it) as one datagram; anything else as its str()."""
        if isinstance(message, (dict, list)):
            _check(_lib.mc_send_json(self._handle, _json_text(message)))
            return
        data = _payload(message)
        _check(_lib.mc_send(self._handle, data, len(data)))

    def receive(self, timeout: Optional[float] = 30) -> Optional[Message]:
        """Waits up to ``timeout`` seconds (<= 0: no limit) for one datagram; returns
        {"data": bytes, "source": "ip:port"}, or None on timeout."""
        if timeout is None or timeout <= 0:
            timeout = -1.0
        if isinstance(timeout, float) and math.isnan(timeout):
            raise InvalidArgumentError("timeout must be a number of seconds, not NaN")
        return self._receive(float(timeout))

    def send_batch(self, messages: Sequence[Any]) -> int:
        """Sends each item of the sequence ``messages`` as its own datagram, in order, each
        converted as ``send()`` converts it (str as UTF-8, bytes as they are, dict/list as
        JSON, anything else as its str()), in as few system calls as the kernel allows
        (GSO runs, sendmmsg). Returns how many were sent: fewer than given means the
        kernel stopped taking them. A lone bytes or str is not a sequence of messages
        here: TypeError."""
        if isinstance(messages, (str, bytes, bytearray, memoryview, dict)):
            raise TypeError("send_batch takes a sequence of messages, not a single "
                            f"{type(messages).__name__}; use send() or wrap it in a list")
        # Everything converted before anything is sent, so a bad item sends nothing.
        items = [(True, _json_text(m)) if isinstance(m, (dict, list)) else (False, _payload(m))
                 for m in messages]
        sent, start = 0, 0
        while start < len(items):
            if items[start][0]:
                _check(_lib.mc_send_json(self._handle, items[start][1]))
                sent, start = sent + 1, start + 1
                continue
            end = start
            while end < len(items) and not items[end][0]:
                end += 1
            n = self._send_raw([data for _, data in items[start:end]])
            sent += n
            if n < end - start:
                break
            start = end
        return sent

    def _send_raw(self, payloads):
        buffers = [ctypes.create_string_buffer(p, len(p)) for p in payloads]
        datagrams = (_Datagram * len(payloads))(*[_Datagram(ctypes.cast(b, ctypes.c_void_p), len(p))
                                                  for b, p in zip(buffers, payloads)])
        sent = ctypes.c_size_t(0)
        _check(_lib.mc_send_batch(self._handle, datagrams, len(payloads), ctypes.byref(sent)))
        return sent.value

    def receive_batch(self, timeout: Optional[float] = 30, count: int = 64,
                      size: int = _RECEIVE_CAPACITY) -> List[Message]:
        """Waits up to ``timeout`` seconds (<= 0: no limit) for a datagram, then takes up to
        ``count`` already queued; returns a list of {"data", "source"} dicts ([] on timeout).
        ``size`` is each slot's capacity; the default never truncates."""
        if timeout is None or timeout <= 0:
            timeout = -1.0
        for name, value, low, high in (("count", count, 1, 1024), ("size", size, 0, _RECEIVE_CAPACITY)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidArgumentError(f"{name} must be an integer from {low} to {high}, not {value!r}")
        buffers = [ctypes.create_string_buffer(size) for _ in range(count)]
        slots = (_Received * count)()
        for slot, buf in zip(slots, buffers):
            slot.buf = ctypes.cast(buf, ctypes.c_void_p)
            slot.capacity = size
        filled = ctypes.c_size_t(0)
        status = _interruptible(float(timeout), lambda t: _lib.mc_receive_batch(
            self._handle, t, slots, count, ctypes.byref(filled)))
        if status == _TIMEOUT:
            return []
        return [{"data": ctypes.string_at(buffers[i], slots[i].len), "source": slots[i].source.decode()}
                for i in range(filled.value)]

    def receive_now(self) -> Optional[Message]:
        """Returns a datagram already queued, or None at once: what an event loop calls
        once ``fileno()`` is readable."""
        return self._receive(0.0)

    def fileno(self) -> int:
        """The socket descriptor, readable while a datagram is queued, so a Group works
        with select, selectors and asyncio's add_reader. Do not read or close it."""
        fd = ctypes.c_int(-1)
        _check(_lib.mc_fd(self._handle, ctypes.byref(fd)))
        return fd.value

    @property
    def membership(self) -> str:
        """Whether the membership is in place now: "joined", "interface_down" (nothing
        arrives until it is up) or "interface_gone" (deleted, or no multicast route;
        with ``rejoin`` the group joins again when it is back). Receives keep waiting."""
        status = ctypes.c_int(0)
        _check(_lib.mc_membership(self._handle, ctypes.byref(status), None))
        return _MEMBERSHIP[status.value]

    @property
    def rejoins(self) -> int:
        """How many times the library joined again on a re-created or re-routed interface."""
        count = ctypes.c_uint64(0)
        _check(_lib.mc_membership(self._handle, None, ctypes.byref(count)))
        return count.value

    def rotate_key(self, key: bytes, key_id: int, keep_previous: bool = True) -> None:
        """Seals sends under ``key`` (``KEY_SIZE`` bytes) with id ``key_id`` (0..255, not
        the current key's) from now on; with ``keep_previous`` the replaced key is still
        accepted while the other members change over."""
        buffer, length = _key_bytes(key, "key")
        _check(_lib.mc_rotate_key(self._handle, _key_id(key_id, "key_id"), buffer, length,
                                  bool(keep_previous)))

    @property
    def auth_counters(self) -> dict:
        """Datagrams an authenticated group dropped since the join, by reason:
        {"unauthenticated": forged, altered or malformed, "unknown_key": sealed under a
        key id this handle does not hold, "replayed": authentic but seen before}."""
        counts = [ctypes.c_uint64(0) for _ in range(3)]
        _check(_lib.mc_auth_counters(self._handle, *(ctypes.byref(c) for c in counts)))
        return dict(zip(("unauthenticated", "unknown_key", "replayed"), (c.value for c in counts)))

    @property
    def receive_buffer_size(self) -> int:
        """The socket receive buffer the kernel granted (Linux doubles the request and
        caps it at net.core.rmem_max)."""
        size = ctypes.c_size_t(0)
        _check(_lib.mc_receive_buffer_size(self._handle, ctypes.byref(size)))
        return size.value

    def _receive(self, timeout):
        buf, source = _receive_buffers()
        length = ctypes.c_size_t(0)
        status = _interruptible(timeout, lambda t: _lib.mc_receive(
            self._handle, t, buf, len(buf), ctypes.byref(length), source, len(source)))
        if status == _TIMEOUT:
            return None
        # string_at copies the datagram's bytes alone (buf.raw would copy all 64 KiB).
        return {"data": ctypes.string_at(buf, length.value), "source": source.value.decode()}

    def close(self) -> None:
        """Leaves the group; wakes blocked receivers (they raise ClosedError). Idempotent."""
        _check(_lib.mc_close(self._handle))

    def __enter__(self) -> "Group":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _lib.mc_free(handle)

    def __repr__(self):
        return f"<libmulticast.Group {self.local_addr}>"


def capabilities() -> FrozenSet[str]:
    """What the loaded library can do on this system beyond the portable baseline:
    names from "drop_count", "packet_info", "gro", "gso", "batch_syscalls" and
    "interface_events" (all on Linux). Where one is absent, the same calls work with the
    stand-in the C header documents for it (mc_capability)."""
    bits = ctypes.c_uint32(0)
    _check(_lib.mc_capabilities(ctypes.byref(bits)))
    return frozenset(name for bit, name in _CAPABILITIES.items() if bits.value & bit)


def generate_key() -> bytes:
    """A new random group key (``KEY_SIZE`` bytes) from the operating system."""
    out = (ctypes.c_uint8 * KEY_SIZE)()
    _check(_lib.mc_generate_key(out, KEY_SIZE))
    return bytes(out)


def _key_bytes(key, what):
    """A ctypes copy of a key and its length (the C side checks the length)."""
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"{what} must be bytes, not {type(key).__name__}")
    data = bytes(key)
    return (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data.ljust(1, b"\0")), len(data)


def _key_id(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise InvalidArgumentError(f"{what} must be an integer in 0..255, not {value!r}")
    return value


def join(group_addr: str, port: int, interface: Optional[str] = "", *, ttl: int = 1, loopback: bool = True,
         interface_index: int = 0, receive_buffer: int = 0, gro: bool = False,
         source: Optional[str] = "", rejoin: bool = True, reannounce: Optional[int] = None,
         max_datagrams_per_second: int = 0, max_bytes_per_second: int = 0,
         key: Optional[bytes] = None, key_id: int = 0, previous_key: Optional[bytes] = None,
         previous_key_id: int = 0) -> Group:
    """Joins ``group_addr`` on ``port``; ``interface`` is a name, an address, or "" for
    the kernel's choice (or give ``interface_index``). ``ttl`` 1..255, ``loopback``
    whether this host hears its own sends, ``receive_buffer`` the SO_RCVBUF to request
    (0: the kernel's default; see ``Group.receive_buffer_size`` for what was granted),
    ``gro`` lets the kernel coalesce runs of datagrams (split again by the library),
    ``source`` admits only one sender's datagrams (source-specific multicast),
    ``rejoin`` joins again when the interface comes back (see ``Group.membership``), and
    ``reannounce`` (whole seconds, at least 1) re-announces the membership for LANs whose
    snooping switches have no querier; ``max_datagrams_per_second`` and
    ``max_bytes_per_second`` (0: no limit) make sends over that budget raise
    ``RateLimitedError``. ``key`` (``KEY_SIZE`` bytes, id ``key_id``) makes an
    authenticated group: sends are sealed with ChaCha20-Poly1305 and only datagrams
    sealed by a key holder are received (see ``Group.auth_counters``); ``previous_key``
    (id ``previous_key_id``) is accepted too, during a rotation."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidArgumentError("port must be between 1 and 65535")
    for name, value, limit in (("ttl", ttl, 2**31 - 1), ("interface_index", interface_index, 2**32 - 1),
                               ("receive_buffer", receive_buffer, 2**63 - 1)):
        if not isinstance(value, int) or isinstance(value, bool) or not -2**31 <= value <= limit:
            raise InvalidArgumentError(f"{name} must be an integer in range, not {value!r}")
    if receive_buffer < 0 or interface_index < 0:
        raise InvalidArgumentError("interface_index and receive_buffer must not be negative")
    options = _JoinOptions()
    _check(_lib.mc_join_options_init(ctypes.byref(options), _JOIN_OPTIONS_VERSION))
    options.interface_name = _text(interface or "", "interface")
    options.interface_index = interface_index
    options.ttl = ttl
    options.loopback = bool(loopback)
    options.receive_buffer_size = receive_buffer
    options.gro = bool(gro)
    options.source_address = _text(source or "", "source")
    options.rejoin = bool(rejoin)
    if reannounce is not None and (not isinstance(reannounce, int) or isinstance(reannounce, bool)
                                   or not 1 <= reannounce <= 2**32 - 1):
        raise InvalidArgumentError(f"reannounce must be whole seconds (at least 1) or None, not {reannounce!r}")
    options.reannounce_seconds = reannounce or 0
    for name, value in (("max_datagrams_per_second", max_datagrams_per_second),
                        ("max_bytes_per_second", max_bytes_per_second)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**32 - 1:
            raise InvalidArgumentError(f"{name} must be an integer in 0..4294967295, not {value!r}")
        setattr(options, name, value)
    keys = []  # kept alive until the call returns
    for field, value, id_field, id_value in (("group_key", key, "group_key_id", key_id),
                                             ("previous_key", previous_key, "previous_key_id", previous_key_id)):
        setattr(options, id_field, _key_id(id_value, id_field.replace("group_", "")))
        if value is not None:
            buffer, length = _key_bytes(value, field.replace("group_", ""))
            keys.append(buffer)
            setattr(options, field, ctypes.cast(buffer, ctypes.c_void_p))
            setattr(options, field + "_len", length)
    handle = _group_p()
    _check(_lib.mc_join_with_options(_text(group_addr, "group_addr"), port, ctypes.byref(options),
                                     ctypes.byref(handle)))
    return Group(handle)


def version() -> str:
    """The version of the loaded libmulticast."""
    return _lib.mc_version().decode()
