"""Forged `mcat ping` probes, as a host without the group's key can send them.

    python3 tests/ping/forged_probes.py TARGET PORT COUNT

Sends COUNT unicast probes to TARGET:PORT, each under a new random id and naming a random
unicast port, every other one from PORT itself (as a real ping's socket) and the rest
from a port the system picks. Run on a host of the simulated LAN only (scripts/lan).
"""
import json
import random
import socket
import sys

target, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from_ping_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
from_ping_port.bind(("", port))
from_any_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    probe = {"mcat": "ping", "type": "probe", "id": random.getrandbits(63),
             "uport": random.randint(1024, 65535), "seq": i, "t": 0}
    sender = from_ping_port if i % 2 else from_any_port
    sender.sendto(json.dumps(probe).encode(), (target, port))
