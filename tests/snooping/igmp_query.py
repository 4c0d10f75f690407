"""Sends one IGMPv2 general query (max response 1 s) to 224.0.0.1 on this host's LAN.

scripts/test-snooping runs it once on one host of the simulated LAN: the snooping bridge
then knows a querier exists and forwards each group only to ports whose membership it
has heard lately, while no further query ever asks the hosts to report again. That is
a switch with IGMP snooping and no (working) querier, as hosts see it.
"""
import socket
import struct


def checksum(data: bytes) -> int:
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


query = struct.pack("!BBH4s", 0x11, 10, 0, bytes(4))
query = query[:2] + struct.pack("!H", checksum(query)) + query[4:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
sock.sendto(query, ("224.0.0.1", 0))
