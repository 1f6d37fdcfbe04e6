"""``tdb_jenkins_hash``: Bob Jenkins' lookup3 ``hashlittle`` with initval 0.

CTDB uses it for the lmaster of a key (``hash % vnn_map.size``) and for database ids, so a single
differing bit here splits the cluster's idea of who owns a record.
"""

from __future__ import annotations

import struct

_M = 0xFFFFFFFF
_WORDS = struct.Struct("<3I")


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    for ra, rb, rc in ((4, 6, 8), (16, 19, 4)):
        a = ((a - c) & _M) ^ _rot(c, ra)
        c = (c + b) & _M
        b = ((b - a) & _M) ^ _rot(a, rb)
        a = (a + c) & _M
        c = ((c - b) & _M) ^ _rot(b, rc)
        b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c = ((c ^ b) - _rot(b, 14)) & _M
    a = ((a ^ c) - _rot(c, 11)) & _M
    b = ((b ^ a) - _rot(a, 25)) & _M
    c = ((c ^ b) - _rot(b, 16)) & _M
    a = ((a ^ c) - _rot(c, 4)) & _M
    b = ((b ^ a) - _rot(a, 14)) & _M
    return ((c ^ b) - _rot(b, 24)) & _M


def jenkins_hash(data: bytes) -> int:
    length = len(data)
    a = b = c = (0xDEADBEEF + length) & _M
    if length == 0:
        return c  # lookup3 skips final() for the empty key
    view = memoryview(data)
    pos = 0
    # Every full block but the last is mixed; the last (1..12 bytes) goes through final().
    while length - pos > 12:
        x, y, z = _WORDS.unpack_from(view, pos)
        a, b, c = _mix((a + x) & _M, (b + y) & _M, (c + z) & _M)
        pos += 12
    # The C byte-switch adds the tail bytes little-endian, which equals zero-padding to 12.
    x, y, z = _WORDS.unpack(bytes(view[pos:]).ljust(12, b"\0"))
    return _final((a + x) & _M, (b + y) & _M, (c + z) & _M)


def db_id(name: str) -> int:
    """Database id as ctdbd computes it on attach: the hash covers the terminating NUL."""
    return jenkins_hash(name.encode() + b"\0")
