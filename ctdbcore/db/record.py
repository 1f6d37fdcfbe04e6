"""The rules about one record that every node applies the same way (4.17, §2.4–2.7, §4.4).

Pure functions: which node is a key's lmaster, what a missing record looks like, what the
daemon's own store does to the header (keep or delete, RSN bump), which of two copies
recovery keeps. No files, no sockets: the daemon and the tests share them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.hash import jenkins_hash
from ctdbcore.protocol.records import LtdbHeader

HEADER_SIZE = LtdbHeader.SIZE

RO_FLAGS = (
    RecordFlags.RO_HAVE_DELEGATIONS
    | RecordFlags.RO_HAVE_READONLY
    | RecordFlags.RO_REVOKING_READONLY
    | RecordFlags.RO_REVOKE_COMPLETE
)
# Flags that only describe an operation in flight; a stored header never carries them.
TRANSIENT_FLAGS = RecordFlags.VACUUM_MIGRATED | RecordFlags.AUTOMATIC

# Persistent databases keep their transaction counter in an ordinary record.
SEQNUM_KEY = b"__db_sequence_number__\0"


def lmaster(key: bytes, vnn_map: Sequence[int]) -> int:
    """The node that always knows who holds ``key``: ``map[jenkins(key) % size]``."""
    return vnn_map[jenkins_hash(key) % len(vnn_map)]


def initial_header(key: bytes, vnn_map: Sequence[int]) -> LtdbHeader:
    """What a record nobody has written yet looks like: rsn 0, held by its lmaster."""
    return LtdbHeader(rsn=0, dmaster=lmaster(key, vnn_map), flags=RecordFlags.AUTOMATIC)


def split_value(value: bytes | None) -> tuple[LtdbHeader, bytes] | None:
    """A tdb value as (header, data); None for a missing or header-less value."""
    if value is None or len(value) < HEADER_SIZE:
        return None
    return LtdbHeader.unpack(value), value[HEADER_SIZE:]


def join_value(header: LtdbHeader, data: bytes) -> bytes:
    return header.pack() + data


def volatile_store(header: LtdbHeader, data: bytes, *, pnn: int, is_lmaster: bool) -> LtdbHeader | None:
    """The header the daemon writes for a volatile record, or None to delete it instead.

    A record is worth keeping when it has data, is part of a read-only delegation, was
    ever migrated with data (its emptiness must win over an older copy elsewhere), or is
    held by this node as lmaster or dmaster. The dmaster's own writes bump the RSN, which
    is what makes the dmaster's copy the newest one everywhere.
    """
    flags = header.flags
    if data or flags & (RO_FLAGS | RecordFlags.AUTOMATIC | RecordFlags.MIGRATED_WITH_DATA):
        keep = True
    elif is_lmaster:
        # The lmaster normally keeps even an empty record (a local client expects it to
        # exist after a migration), except one that a vacuum run just brought home to
        # this node: that is the point of fetching it home.
        keep = not flags & RecordFlags.VACUUM_MIGRATED or header.dmaster != pnn
    else:
        keep = header.dmaster == pnn
    if not keep:
        return None
    rsn = header.rsn
    if header.dmaster == pnn and not flags & RO_FLAGS:
        rsn += 1
    return LtdbHeader(rsn=rsn, dmaster=header.dmaster, flags=flags & ~TRANSIENT_FLAGS)


def keeps_existing(rsn_in: int, rsn_old: int, dmaster_old: int, leader: int) -> bool:
    """Recovery's merge rule (4.17's ``recdb_add_traverse``), on the header fields: the
    highest RSN wins; on a tie the copy already collected stays, unless it names the
    leader as dmaster."""
    return rsn_in < rsn_old or (rsn_in == rsn_old and dmaster_old != leader)


def newer_for_recovery(incoming: LtdbHeader, existing: LtdbHeader | None, leader: int) -> bool:
    """Whether ``incoming`` replaces the copy collected so far."""
    return existing is None or not keeps_existing(incoming.rsn, existing.rsn, existing.dmaster, leader)
