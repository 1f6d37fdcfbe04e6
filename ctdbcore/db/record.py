"""The rules about one record that every node applies the same way (4.17, §2.4–2.7, §4.4).

Pure functions: which node is a key's lmaster, what a missing record looks like, what the
daemon's own store does to the header (keep or delete, RSN bump), which of two copies
recovery keeps. No files, no sockets: the daemon and the tests share them.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import evolve as attrs_evolve

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


# -- read-only delegations (4.17 server/ctdb_call.c, ctdb_daemon.c; doc/readonlyrecords.txt) --
#
# On a database with the READONLY flag the data master may hand out read-only copies of
# a record. The life of one record:
#
#   dmaster, first delegation:  rsn += 3, HAVE_DELEGATIONS        (delegation_headers)
#   each copy handed out:       rsn - 2, HAVE_READONLY            (delegation_headers)
#   a write request arrives:    REVOKING_READONLY is added on the dmaster, and every
#                               node holding a copy is sent an UPDATE_RECORD with a
#                               plain header of rsn - 1            (revoke_update_header)
#   all of them answered:       rsn + 1, REVOKE_COMPLETE (or, when one failed, the
#                               REVOKING flag is dropped and the next call retries)
#                                                                  (revoke_finished)
#   the next call on the record: all RO flags cleared (and the usual dmaster bump by
#                               the store), then it is served as any other
#                                                                  (revoke_cleared)


def delegation_headers(header: LtdbHeader) -> tuple[LtdbHeader | None, LtdbHeader]:
    """A data master answering a read-only request: the header it must store first
    (None when it already has delegations out) and the header of the copy it sends."""
    stored = None
    if not header.flags & RecordFlags.RO_HAVE_DELEGATIONS:
        header = LtdbHeader(rsn=header.rsn + 3, dmaster=header.dmaster,
                            flags=header.flags | RecordFlags.RO_HAVE_DELEGATIONS)
        stored = header
    copy = LtdbHeader(rsn=header.rsn - 2, dmaster=header.dmaster,
                      flags=(header.flags | RecordFlags.RO_HAVE_READONLY) & ~RecordFlags.RO_HAVE_DELEGATIONS)
    return stored, copy


def needs_revoke(header: LtdbHeader, *, want_readonly: bool) -> bool:
    """Whether a call that reached the data master must first take back the read-only
    copies (or drop this node's own)."""
    return not want_readonly and bool(
        header.flags & (RecordFlags.RO_HAVE_DELEGATIONS | RecordFlags.RO_HAVE_READONLY))


def revoking(header: LtdbHeader) -> LtdbHeader:
    """The header the data master stores while the revoke runs."""
    return attrs_evolve(header, flags=header.flags | RecordFlags.RO_REVOKING_READONLY)


def revoke_update_header(header: LtdbHeader) -> LtdbHeader:
    """What every node holding a copy is told to store: a plain copy naming the data
    master, one RSN below the data master's, marked as once migrated with data."""
    flags = header.flags & ~(RecordFlags.RO_REVOKING_READONLY | RecordFlags.RO_HAVE_DELEGATIONS
                             | RecordFlags.RO_HAVE_READONLY)
    return LtdbHeader(rsn=header.rsn - 1, dmaster=header.dmaster, flags=flags | RecordFlags.MIGRATED_WITH_DATA)


def revoke_finished(current: LtdbHeader, started_rsn: int, *, all_ok: bool) -> LtdbHeader | None:
    """The data master's header once every copy holder answered, from the header it
    holds now; None when the record is not in the state the revoke left it in (then
    it is left alone, as 4.17's revoke child gives up)."""
    both = RecordFlags.RO_REVOKING_READONLY | RecordFlags.RO_HAVE_DELEGATIONS
    if current.rsn > started_rsn or current.flags & both != both:
        return None
    if all_ok:
        return LtdbHeader(rsn=current.rsn + 1, dmaster=current.dmaster,
                          flags=current.flags | RecordFlags.RO_REVOKE_COMPLETE)
    return attrs_evolve(current, flags=current.flags & ~RecordFlags.RO_REVOKING_READONLY)


def revoke_cleared(header: LtdbHeader) -> LtdbHeader:
    """A completed revoke, noticed by the next call: no RO flag is left."""
    return attrs_evolve(header, flags=header.flags & ~RO_FLAGS)


def ro_copy_newer(copy: LtdbHeader, existing: LtdbHeader | None) -> bool:
    """The requester keeps a delegated copy only when it is newer than what it has."""
    return bool(copy.flags & RecordFlags.RO_HAVE_READONLY) and (existing is None or copy.rsn > existing.rsn)


def readable_here(header: LtdbHeader, pnn: int) -> bool:
    """4.17 ``ctdb_fetch_lock`` with readonly: a record may be read locally when this
    node is its data master or holds a read-only copy (or is the dmaster with copies out)."""
    return header.dmaster == pnn or bool(
        header.flags & (RecordFlags.RO_HAVE_READONLY | RecordFlags.RO_HAVE_DELEGATIONS))


def writable_here(header: LtdbHeader, pnn: int) -> bool:
    """Writes need this node to be the data master with no read-only copies out (and no
    revoke in progress or just finished: the daemon clears those flags first)."""
    return header.dmaster == pnn and not header.flags & RO_FLAGS


def tracking_add(bitmap: bytes, pnn: int) -> bytes:
    """4.17's tracking record (``<db>.RO``): a bitmap of the nodes holding a copy."""
    byte, bit = divmod(pnn, 8)
    buf = bytearray(bitmap.ljust(byte + 1, b"\0"))
    buf[byte] |= 1 << bit
    return bytes(buf)


def tracking_nodes(bitmap: bytes) -> list[int]:
    return [i * 8 + j for i, b in enumerate(bitmap) for j in range(8) if b & (1 << j)]
