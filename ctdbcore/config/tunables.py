"""The 62 tunables of 4.17 (common/tunable.c ``tunable_map``, reference §7.4).

``TUNABLE_TABLE`` is in ``ctdb listvars`` order; ``idx`` is the slot in the
GET_ALL_TUNABLES reply, which is *not* the table order (LCP2PublicIPs is 41 but
listed after DeterministicIPs, for instance). Names compare case-insensitively,
as 4.17's ``strcasecmp``.

A few defaults differ from 4.17 for faster failure detection; each change and its
reason is in :data:`CHANGED_DEFAULTS`, and :meth:`Tunables.upstream` gives 4.17's.
"""

from __future__ import annotations

from typing import Any

import attrs

from ctdbcore.config.convert import parse_int
from ctdbcore.config.errors import ConfigErrors, ErrorCollector

U32_MAX = 0xFFFFFFFF

# Status codes of SET_TUNABLE, as server/ctdb_tunables.c returns them.
SET_OK = 0
SET_OBSOLETE = 1
SET_UNKNOWN = -1


@attrs.frozen
class TunableDef:
    name: str
    default: int  # the 4.17 default
    obsolete: bool
    idx: int


_T = TunableDef
TUNABLE_TABLE: tuple[TunableDef, ...] = (
    _T("MaxRedirectCount", 3, True, 0),
    _T("SeqnumInterval", 1000, False, 1),
    _T("ControlTimeout", 60, False, 2),
    _T("TraverseTimeout", 20, False, 3),
    _T("KeepaliveInterval", 5, False, 4),
    _T("KeepaliveLimit", 5, False, 5),
    _T("RecoverTimeout", 30, False, 6),
    _T("RecoverInterval", 1, False, 7),
    _T("ElectionTimeout", 3, False, 8),
    _T("TakeoverTimeout", 9, False, 9),
    _T("MonitorInterval", 15, False, 10),
    _T("TickleUpdateInterval", 20, False, 11),
    _T("EventScriptTimeout", 30, False, 12),
    _T("MonitorTimeoutCount", 20, False, 13),
    _T("EventScriptUnhealthyOnTimeout", 0, True, 14),
    _T("RecoveryGracePeriod", 120, False, 15),
    _T("RecoveryBanPeriod", 300, False, 16),
    _T("DatabaseHashSize", 100001, False, 17),
    _T("DatabaseMaxDead", 5, False, 18),
    _T("RerecoveryTimeout", 10, False, 19),
    _T("EnableBans", 1, False, 20),
    _T("DeterministicIPs", 0, True, 21),
    _T("LCP2PublicIPs", 1, True, 41),
    _T("ReclockPingPeriod", 60, True, 22),
    _T("NoIPFailback", 0, False, 23),
    _T("DisableIPFailover", 0, True, 24),
    _T("VerboseMemoryNames", 0, False, 25),
    _T("RecdPingTimeout", 60, False, 26),
    _T("RecdFailCount", 10, False, 27),
    _T("LogLatencyMs", 0, False, 28),
    _T("RecLockLatencyMs", 1000, False, 29),
    _T("RecoveryDropAllIPs", 120, False, 30),
    _T("VerifyRecoveryLock", 1, True, 31),
    _T("VacuumInterval", 10, False, 32),
    _T("VacuumMaxRunTime", 120, False, 33),
    _T("RepackLimit", 10000, False, 34),
    _T("VacuumLimit", 5000, True, 35),
    _T("VacuumFastPathCount", 60, False, 40),
    _T("MaxQueueDropMsg", 1000000, False, 36),
    _T("AllowUnhealthyDBRead", 0, False, 37),
    _T("StatHistoryInterval", 1, False, 38),
    _T("DeferredAttachTO", 120, False, 39),
    _T("AllowClientDBAttach", 1, False, 42),
    _T("RecoverPDBBySeqNum", 1, True, 43),
    _T("DeferredRebalanceOnNodeAdd", 300, True, 44),
    _T("FetchCollapse", 1, False, 45),
    _T("HopcountMakeSticky", 50, False, 46),
    _T("StickyDuration", 600, False, 47),
    _T("StickyPindown", 200, False, 48),
    _T("NoIPTakeover", 0, False, 49),
    _T("DBRecordCountWarn", 100000, False, 50),
    _T("DBRecordSizeWarn", 10000000, False, 51),
    _T("DBSizeWarn", 100000000, False, 52),
    _T("PullDBPreallocation", 10485760, False, 53),
    _T("NoIPHostOnAllDisabled", 1, True, 54),
    _T("Samba3AvoidDeadlocks", 0, True, 55),
    _T("TDBMutexEnabled", 1, True, 56),
    _T("LockProcessesPerDB", 200, False, 57),
    _T("RecBufferSizeLimit", 1000000, False, 58),
    _T("QueueBufferSize", 1024, False, 59),
    _T("IPAllocAlgorithm", 2, False, 60),
    _T("AllowMixedVersions", 0, False, 61),
)
del _T

TABLE = TUNABLE_TABLE  # short alias
NUM_TUNABLES = len(TUNABLE_TABLE)  # 62 u32 = 248 bytes on the wire
assert NUM_TUNABLES == 62 and sorted(t.idx for t in TUNABLE_TABLE) == list(range(62))

_BY_LOWER: dict[str, TunableDef] = {t.name.lower(): t for t in TUNABLE_TABLE}

#: name -> (our default, why it differs from 4.17)
CHANGED_DEFAULTS: dict[str, tuple[int, str]] = {
    "KeepaliveInterval": (1, "4.17: 5; we send keepalives 5x per interval, so a 1 s interval still tolerates jitter"),
    "KeepaliveLimit": (1, "4.17: 5; a peer is dead after KeepaliveInterval x KeepaliveLimit s of silence = 1 s"),
    "ElectionTimeout": (1, "4.17: 3; elections start at once on a dead leader, so waiting longer only delays recovery"),
    "RerecoveryTimeout": (0, "4.17: 10; we only recover on real membership changes, so there is no storm to damp"),
    "MonitorInterval": (5, "4.17: 15; detect failed services three times sooner"),
}


def lookup(name: str) -> TunableDef | None:
    return _BY_LOWER.get(name.lower())


def default_values(*, upstream: bool = False) -> list[int]:
    """The 62 values by idx: ours, or 4.17's with ``upstream=True``."""
    values = [0] * NUM_TUNABLES
    for t in TUNABLE_TABLE:
        values[t.idx] = t.default
        if not upstream and t.name in CHANGED_DEFAULTS:
            values[t.idx] = CHANGED_DEFAULTS[t.name][0]
    return values


@attrs.define
class Tunables:
    """The daemon's live tunables; ``tunables.KeepaliveInterval`` reads one."""

    values: list[int] = attrs.field(factory=default_values)

    @classmethod
    def upstream(cls) -> Tunables:
        return cls(default_values(upstream=True))

    def get(self, name: str) -> int:
        t = lookup(name)
        if t is None:
            raise KeyError(name)
        return self.values[t.idx]

    def set(self, name: str, value: int) -> int:
        """SET_TUNABLE semantics: 0 ok, 1 obsolete (value stored anyway, as 4.17), -1 unknown.

        A value outside u32 also gives -1: the wire cannot carry it, so only a
        local caller can get here, and it gets the same refusal a bad name gets.
        """
        t = lookup(name)
        if t is None or not 0 <= value <= U32_MAX:
            return SET_UNKNOWN
        self.values[t.idx] = value
        return SET_OBSOLETE if t.obsolete else SET_OK

    def listvars(self) -> list[tuple[str, int]]:
        return [(t.name, self.values[t.idx]) for t in TUNABLE_TABLE if not t.obsolete]

    def to_list(self) -> tuple[int, ...]:
        return tuple(self.values)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names attrs did not define: the tunable names.
        if name.startswith("_") or name == "values":
            raise AttributeError(name)
        t = lookup(name)
        if t is None:
            raise AttributeError(name)
        return self.values[t.idx]


def parse_tunables_text(text: str, path: str | None = "ctdb.tunables") -> dict[str, int]:
    """``Name=value`` lines -> {canonical name: value}, in file order."""
    errors = ErrorCollector(path)
    result: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            errors.add(lineno, f"sections are not allowed in a tunables file: {line!r}")
            continue
        name, eq, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name:
            errors.add(lineno, f"syntax error: expected 'Name=value', got {line!r}")
            continue
        t = lookup(name)
        if t is None:
            errors.add(lineno, f"unknown tunable {name!r}")
            continue
        if t.obsolete:
            errors.add(lineno, f"obsolete tunable {t.name!r}")
            continue
        try:
            number = parse_int(value)
            if not 0 <= number <= U32_MAX:
                raise ValueError
        except ValueError:
            errors.add(lineno, f"invalid value {value!r} for {t.name} (an integer 0-{U32_MAX})")
            continue
        result[t.name] = number
    errors.raise_if_any()
    return result


def parse_tunables_file(path: str) -> dict[str, int]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        errors = ErrorCollector(path)
        errors.add(None, f"cannot read: {exc}")
        raise ConfigErrors(errors.errors) from exc
    return parse_tunables_text(text, path)
