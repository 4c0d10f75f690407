"""libmulticast for asyncio: a waiting receive is a suspended task, not a thread.

``join`` takes ``libmulticast.join``'s arguments and returns an ``AsyncGroup``::

    async with await libmulticast.aio.join("239.1.1.1", 9999) as group:
        await group.send("hello")
        message = await group.receive(timeout=5)   # None on timeout
        async for message in group:                 # until the group is closed
            ...

It is the library's one waiting model with the event loop's wait: the loop watches the
socket (``add_reader``) and, while tasks wait, each readable moment receives without
waiting (``receive_now``) and hands each datagram to the task that has waited longest.
A datagram leaves the socket only for a task still waiting, and one handed to a task
cancelled before it resumed goes to the next receive: ``task.cancel()`` loses nothing.
Works with any loop that has ``add_reader`` (asyncio's selector loops, uvloop); not
Windows' proactor loop.
"""

import asyncio
import collections
import os
from typing import Any, AsyncIterator, Deque, List, Optional

from . import ClosedError, Group, Message, MulticastError
from . import join as _join_blocking

__all__ = ["AsyncGroup", "join"]

# How many receives in a row may return without suspending before one yields to the loop.
_AT_ONCE_BEFORE_YIELD = 64


async def join(group_addr: str, port: int, interface: Optional[str] = "", **options: Any) -> "AsyncGroup":
    """Joins as ``libmulticast.join`` does (the same arguments) and returns an AsyncGroup
    bound to the running event loop."""
    return AsyncGroup(_join_blocking(group_addr, port, interface, **options))


class AsyncGroup:
    """A joined group for one asyncio event loop. ``close()`` ends waiting receives (they
    raise ClosedError) and ``async for`` loops; ``async with`` closes on exit."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self._loop = asyncio.get_running_loop()
        # A duplicate of the socket for the loop to watch: closing the group shuts the
        # socket down (readable: waiters wake) and closes only the group's descriptor,
        # which a selector would silently forget.
        self._fd: Optional[int] = os.dup(group.fileno())
        self._waiters: Deque["asyncio.Future[Message]"] = collections.deque()
        self._returned: Deque[Message] = collections.deque()  # handed to cancelled tasks
        self._watching = False
        self._closed = False
        self._at_once = 0  # receives in a row that returned without waiting

    async def send(self, message: Any) -> None:
        """Sends as ``Group.send`` does (str, bytes, dict/list as JSON). A UDP send
        finishes at once unless the socket's send buffer is full."""
        self.group.send(message)

    async def receive(self, timeout: Optional[float] = 30) -> Optional[Message]:
        """Waits up to ``timeout`` seconds (None or <= 0: no limit) for one datagram:
        {"data": bytes, "source": "ip:port"}, or None on timeout. Raises ClosedError once
        the group is closed."""
        if self._returned:
            return self._returned.popleft()
        if self._closed:
            raise ClosedError("receive failed: the group is closed")
        if not self._waiters:
            # Under a flood every receive could return at once and the task would never
            # let the loop run others: every so often it yields first (as tokio's
            # cooperative budget makes a task do).
            self._at_once += 1
            if self._at_once >= _AT_ONCE_BEFORE_YIELD:
                self._at_once = 0
                await asyncio.sleep(0)
            message = self.group.receive_now()
            if message is not None:
                return message
        self._at_once = 0
        waiter: "asyncio.Future[Message]" = self._loop.create_future()
        self._waiters.append(waiter)
        self._watch()
        try:
            if timeout is None or timeout <= 0:
                return await waiter
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            return self._give_back(waiter)
        except asyncio.CancelledError:
            message = self._give_back(waiter)
            if message is not None:
                self._returned.append(message)
            raise
        finally:
            if not self._waiters:
                self._unwatch()

    def _give_back(self, waiter: "asyncio.Future[Message]") -> Optional[Message]:
        """Withdraws a waiter that stopped waiting; the datagram it was handed, if any."""
        if waiter.done():
            return None if waiter.cancelled() or waiter.exception() else waiter.result()
        waiter.cancel()
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
        return None

    async def receive_batch(self, timeout: Optional[float] = 30, count: int = 64) -> List[Message]:
        """Waits up to ``timeout`` seconds for a datagram, then takes up to ``count`` in
        all that are already queued; [] on timeout."""
        first = await self.receive(timeout)
        if first is None:
            return []
        messages = [first]
        while len(messages) < count:
            more = self._returned.popleft() if self._returned else self.group.receive_now()
            if more is None:
                break
            messages.append(more)
        return messages

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while True:
            try:
                message = await self.receive(timeout=None)
            except ClosedError:
                return
            if message is not None:
                yield message

    def close(self) -> None:
        """Leaves the group; waiting receives raise ClosedError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()
        self.group.close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ClosedError("receive failed: the group is closed"))

    async def __aenter__(self) -> "AsyncGroup":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _watch(self) -> None:
        if not self._watching and self._fd is not None:
            self._loop.add_reader(self._fd, self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _release(self) -> None:
        """Stops watching and closes the duplicate descriptor, once."""
        self._unwatch()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None and not getattr(self, "_watching", False):
            os.close(fd)

    def _readable(self) -> None:
        """The socket is readable: a datagram for each waiting task, longest first, as
        long as the queue has one (forgeries and the like are dropped by receive_now)."""
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():  # timed out or cancelled meanwhile
                self._waiters.popleft()
                continue
            try:
                message = self.group.receive_now()
            except ClosedError as closed:  # closed elsewhere (Group.close, another thread)
                self._closed = True
                self._release()
                while self._waiters:
                    w = self._waiters.popleft()
                    if not w.done():
                        w.set_exception(closed)
                return
            except MulticastError as error:
                # Raised into the loop instead, it would be logged and this callback
                # called again at once, for as long as the error lasted, while the task
                # waited on: the task that waits longest gets it, as a blocking receive
                # would raise it.
                self._waiters.popleft().set_exception(error)
                return
            if message is None:
                return
            self._waiters.popleft().set_result(message)
        self._unwatch()

    def __repr__(self) -> str:
        return f"<libmulticast.aio.AsyncGroup {self.group.local_addr}>"
