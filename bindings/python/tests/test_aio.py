"""pytest tests of libmulticast.aio (asyncio, and uvloop's loop), inside scripts/netns."""

import asyncio
import itertools
import os

import pytest
import uvloop  # installed by scripts/setup: the uvloop runs are tests, not optional

import libmulticast as multicast
from libmulticast import aio

if os.environ.get("MC_NETNS") != "1":
    pytest.exit("refusing to run outside scripts/netns (MC_NETNS is not 1)", returncode=2)

_ports = itertools.count(44000)
GROUP = "239.3.1.1"


def run(coroutine_function, loop_kind):
    """Runs the test's coroutine on asyncio's default loop or on uvloop's; one that
    waits 60 s (for a datagram that never came) fails rather than hangs."""
    bounded = asyncio.wait_for(coroutine_function(), 60)
    if loop_kind == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(bounded)
    return asyncio.run(bounded)


def threads():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


LOOPS = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])


@LOOPS
def test_send_receive_timeout_and_async_with(loop_kind):
    async def main():
        async with await aio.join(GROUP, next(_ports)) as g:
            await g.send("hello")
            message = await g.receive(timeout=5)
            assert message is not None and message["data"] == b"hello"
            assert await g.receive(timeout=0.05) is None
            await g.send({"n": 1})
            assert (await g.receive(timeout=5))["data"] == b'{"n":1}'
        with pytest.raises(multicast.ClosedError):
            await g.receive(timeout=1)

    run(main, loop_kind)


@LOOPS
def test_batch_and_async_for_until_closed(loop_kind):
    async def main():
        g = await aio.join(GROUP, next(_ports))
        for i in range(5):
            await g.send(bytes([i]) * 3)
        got = []
        while len(got) < 5:
            batch = await g.receive_batch(timeout=5, count=8)
            assert batch, "a batch timed out"
            got += [m["data"] for m in batch]
        assert got == [bytes([i]) * 3 for i in range(5)]

        seen = []

        async def consume():
            async for m in g:
                seen.append(m["data"])

        consumer = asyncio.ensure_future(consume())
        await g.send("a")
        await g.send("b")
        for _ in range(500):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        g.close()
        await asyncio.wait_for(consumer, 5)  # the loop ends with the group
        assert seen == [b"a", b"b"]

    run(main, loop_kind)


@LOOPS
def test_cancelled_receives_lose_nothing(loop_kind):
    async def main():
        g = await aio.join(GROUP, next(_ports))
        sent = 1000

        async def sender():
            for i in range(sent):
                await g.send(i.to_bytes(4, "big"))
                if i % 25 == 0:
                    await asyncio.sleep(0.001)

        sending = asyncio.ensure_future(sender())
        received, cancelled = [], 0
        while len(received) < sent:
            task = asyncio.ensure_future(g.receive(timeout=None))
            await asyncio.sleep(0)  # it starts waiting, or takes one at once
            if not task.done():
                task.cancel()
            try:
                message = await task
                received.append(int.from_bytes(message["data"], "big"))
            except asyncio.CancelledError:
                cancelled += 1
            if cancelled > 100_000:
                break
        await sending
        assert cancelled > 0, "no receive was ever cancelled: the test proved nothing"
        assert received == list(range(sent)), "a datagram was lost or reordered by a cancel"
        g.close()

    run(main, loop_kind)


@LOOPS
def test_two_thousand_tasks_on_twenty_groups(loop_kind):
    async def main():
        before = threads()
        groups = [await aio.join(GROUP, next(_ports)) for _ in range(20)]
        results = []

        async def waiter(g):
            try:
                results.append(await g.receive(timeout=None))
            except multicast.ClosedError:
                results.append("closed")

        tasks = [asyncio.ensure_future(waiter(groups[i % 20])) for i in range(2000)]
        await asyncio.sleep(0.1)  # every task waits
        during = threads()
        for g in groups:
            await g.send("one")
        for _ in range(500):
            if sum(r != "closed" for r in results) == 20:
                break
            await asyncio.sleep(0.01)
        for g in groups:
            g.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert sum(r != "closed" for r in results) == 20, "each group's datagram reaches one waiter"
        assert results.count("closed") == 1980, "closing woke every other waiter"
        assert during <= before + 2, f"2,000 waiting receives took threads: {before} before, {during} during"

    run(main, loop_kind)


@LOOPS
def test_a_flood_does_not_starve_other_tasks(loop_kind):
    async def main():
        g = await aio.join(GROUP, next(_ports))
        for _ in range(130):  # queued (the default buffer holds them): every receive returns at once
            await g.send(b"x")
        ticks = 0

        async def other():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(other())
        await asyncio.sleep(0)
        before = ticks
        for _ in range(130):
            assert await g.receive(timeout=5) is not None
        assert ticks - before >= 1, "receives that returned at once starved the loop"
        ticker.cancel()
        g.close()

    run(main, loop_kind)


def test_closed_elsewhere_wakes_waiters():
    async def main():
        g = await aio.join(GROUP, next(_ports))
        waiting = asyncio.ensure_future(g.receive(timeout=None))
        await asyncio.sleep(0.05)
        g.group.close()  # the blocking Group's close, as another thread might
        with pytest.raises(multicast.ClosedError):
            await asyncio.wait_for(waiting, 5)

    run(main, "asyncio")


@LOOPS
def test_a_receive_error_goes_to_the_waiting_task(loop_kind):
    """An error from the receive the readable callback makes (here injected: the kernel
    reports few that a test can cause) is raised in the task that waits longest, not into
    the event loop (which would log it and call back at once while it lasted); the task
    after it still gets the datagram."""
    async def main():
        g = await aio.join(GROUP, next(_ports))
        failures = []
        real = g.group.receive_now

        def failing_once():  # in the readable callback only (it runs with tasks waiting)
            if g._waiters and not failures:
                failures.append(1)
                raise multicast.MulticastIOError("receive failed: injected")
            return real()

        g.group.receive_now = failing_once
        first = asyncio.ensure_future(g.receive(timeout=None))
        await asyncio.sleep(0)  # first waits (nothing queued yet) before second
        second = asyncio.ensure_future(g.receive(timeout=None))
        await asyncio.sleep(0)
        await g.send("after the error")
        with pytest.raises(multicast.MulticastIOError, match="injected"):
            await asyncio.wait_for(first, 5)
        assert (await asyncio.wait_for(second, 5))["data"] == b"after the error"
        g.close()

    run(main, loop_kind)
