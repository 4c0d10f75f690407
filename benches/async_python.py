"""make bench's asyncio row: receives on libmulticast.aio against asyncio's own
create_datagram_endpoint on the same group, while mcbench's raw sender floods it
(benches/run.py starts it). One task awaiting each datagram in both: the endpoint's
protocol puts each datagram in an asyncio.Queue the task awaits, the usual way to await
datagrams with it.

    python3 benches/async_python.py lib|std SECONDS   ->  {"rate": datagrams per second}
"""

import asyncio
import json
import os
import socket
import struct
import sys
import time

from libmulticast import aio

GROUP, PORT = "239.77.0.1", 47001  # mcbench blast's


async def with_library(seconds):
    g = await aio.join(GROUP, PORT, os.environ["MC_TEST_ADDR"])
    await g.receive(timeout=None)  # the flood has begun
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await g.receive(timeout=None)
        count += 1
    rate = count / (time.perf_counter() - start)
    g.close()
    return rate


class Queued(asyncio.DatagramProtocol):
    def __init__(self, queue):
        self.queue = queue

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))


async def with_asyncio(seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((GROUP, PORT))
    membership = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(os.environ["MC_TEST_ADDR"]))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    queue = asyncio.Queue()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: Queued(queue), sock=sock)
    await queue.get()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await queue.get()
        count += 1
    rate = count / (time.perf_counter() - start)
    transport.close()
    return rate


def main():
    if os.environ.get("MC_NETNS") != "1":
        sys.exit("async_python.py: run inside scripts/netns")
    which, seconds = sys.argv[1], float(sys.argv[2])
    rate = asyncio.run((with_library if which == "lib" else with_asyncio)(seconds))
    print(json.dumps({"impl": which, "rate": rate}))


if __name__ == "__main__":
    main()
