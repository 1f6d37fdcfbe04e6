"""The 4.17 tunables: names, wire order (GET_ALL_TUNABLES), defaults, obsolete ones.

Names and meanings are 4.17's (common/tunable.c). A few defaults are ours, listed in
CHANGED_DEFAULTS with the reason; `ctdb listvars` shows the values in force.
"""

from __future__ import annotations

import re

import attrs

from ctdbcore.config.errors import Collector


@attrs.frozen
class TunableDef:
    name: str
    default_417: int
    obsolete: bool
    idx: int  # position in struct ctdb_tunable_list


# listvars order = this table's order (4.17 tunable_map); obsolete ones are hidden.
TABLE: tuple[TunableDef, ...] = tuple(
    TunableDef(n, d, o, i)
    for n, d, o, i in [
        ("MaxRedirectCount", 3, True, 0),
        ("SeqnumInterval", 1000, False, 1),
        ("ControlTimeout", 60, False, 2),
        ("TraverseTimeout", 20, False, 3),
        ("KeepaliveInterval", 5, False, 4),
        ("KeepaliveLimit", 5, False, 5),
        ("RecoverTimeout", 30, False, 6),
        ("RecoverInterval", 1, False, 7),
        ("ElectionTimeout", 3, False, 8),
        ("TakeoverTimeout", 9, False, 9),
        ("MonitorInterval", 15, False, 10),
        ("TickleUpdateInterval", 20, False, 11),
        ("EventScriptTimeout", 30, False, 12),
        ("MonitorTimeoutCount", 20, False, 13),
        ("EventScriptUnhealthyOnTimeout", 0, True, 14),
        ("RecoveryGracePeriod", 120, False, 15),
        ("RecoveryBanPeriod", 300, False, 16),
        ("DatabaseHashSize", 100001, False, 17),
        ("DatabaseMaxDead", 5, False, 18),
        ("RerecoveryTimeout", 10, False, 19),
        ("EnableBans", 1, False, 20),
        ("DeterministicIPs", 0, True, 21),
        ("LCP2PublicIPs", 1, True, 41),
        ("ReclockPingPeriod", 60, True, 22),
        ("NoIPFailback", 0, False, 23),
        ("DisableIPFailover", 0, True, 24),
        ("VerboseMemoryNames", 0, False, 25),
        ("RecdPingTimeout", 60, False, 26),
        ("RecdFailCount", 10, False, 27),
        ("LogLatencyMs", 0, False, 28),
        ("RecLockLatencyMs", 1000, False, 29),
        ("RecoveryDropAllIPs", 120, False, 30),
        ("VerifyRecoveryLock", 1, True, 31),
        ("VacuumInterval", 10, False, 32),
        ("VacuumMaxRunTime", 120, False, 33),
        ("RepackLimit", 10000, False, 34),
        ("VacuumLimit", 5000, True, 35),
        ("VacuumFastPathCount", 60, False, 40),
        ("MaxQueueDropMsg", 1000000, False, 36),
        ("AllowUnhealthyDBRead", 0, False, 37),
        ("StatHistoryInterval", 1, False, 38),
        ("DeferredAttachTO", 120, False, 39),
        ("AllowClientDBAttach", 1, False, 42),
        ("RecoverPDBBySeqNum", 1, True, 43),
        ("DeferredRebalanceOnNodeAdd", 300, True, 44),
        ("FetchCollapse", 1, False, 45),
        ("HopcountMakeSticky", 50, False, 46),
        ("StickyDuration", 600, False, 47),
        ("StickyPindown", 200, False, 48),
        ("NoIPTakeover", 0, False, 49),
        ("DBRecordCountWarn", 100000, False, 50),
        ("DBRecordSizeWarn", 10000000, False, 51),
        ("DBSizeWarn", 100000000, False, 52),
        ("PullDBPreallocation", 10 * 1024 * 1024, False, 53),
        ("NoIPHostOnAllDisabled", 1, True, 54),
        ("Samba3AvoidDeadlocks", 0, True, 55),
        ("TDBMutexEnabled", 1, True, 56),
        ("LockProcessesPerDB", 200, False, 57),
        ("RecBufferSizeLimit", 1000000, False, 58),
        ("QueueBufferSize", 1024, False, 59),
        ("IPAllocAlgorithm", 2, False, 60),
        ("AllowMixedVersions", 0, False, 61),
    ]
)
NUM_TUNABLES = 62
BY_NAME = {t.name.lower(): t for t in TABLE}

#: Our defaults where they differ from 4.17, and why.
CHANGED_DEFAULTS: dict[str, tuple[int, str]] = {
    "KeepaliveInterval": (1, "keepalives go out 5 times per interval; a peer is dead after "
                             "KeepaliveInterval x KeepaliveLimit s of silence (4.17: 25 s)"),
    "KeepaliveLimit": (1, "a hung peer is DISCONNECTED after about 1 s"),
    "ElectionTimeout": (1, "the classic (lock-less) election settles in 1 s"),
    "RerecoveryTimeout": (0, "recoveries only run on real membership changes, no storm to damp"),
    "MonitorInterval": (5, "health problems are seen within 5 s"),
}
U32_MAX = 2**32 - 1


def default_value(t: TunableDef) -> int:
    return CHANGED_DEFAULTS.get(t.name, (t.default_417, ""))[0]


@attrs.define
class Tunables:
    values: dict[str, int] = attrs.field(factory=lambda: {t.name: default_value(t) for t in TABLE})

    def get(self, name: str) -> int:
        t = BY_NAME.get(name.lower())
        if t is None:
            raise KeyError(name)
        return self.values[t.name]

    def __getattr__(self, name: str) -> int:
        if name.startswith("_") or name == "values":
            raise AttributeError(name)
        try:
            return self.get(name)
        except KeyError:
            raise AttributeError(name) from None

    def set(self, name: str, value: int) -> int:
        """4.17 SET_TUNABLE status: 0 set, 1 obsolete, -1 unknown or out of range."""
        t = BY_NAME.get(name.lower())
        if t is None or not 0 <= value <= U32_MAX:
            return -1
        if t.obsolete:
            return 1
        self.values[t.name] = int(value)
        return 0

    def listvars(self) -> list[tuple[str, int]]:
        return [(t.name, self.values[t.name]) for t in TABLE if not t.obsolete]

    def to_list(self) -> tuple[int, ...]:
        out = [0] * NUM_TUNABLES
        for t in TABLE:
            out[t.idx] = self.values[t.name]
        return tuple(out)

    def changed_from_417(self) -> list[tuple[str, int, int]]:
        return [(t.name, self.values[t.name], t.default_417) for t in TABLE
                if not t.obsolete and self.values[t.name] != t.default_417]


_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(\S+)\s*$")


def parse_tunables_text(text: str, path: str | None = None) -> dict[str, int]:
    """`ctdb.tunables`: `Name=value` lines, `#` comments; sections, unknown or obsolete
    names and bad values are errors (4.17 refuses to start on them too)."""
    errs = Collector(path)
    out: dict[str, int] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            errs.add(no, f"sections are not allowed in a tunables file: {line!r}")
            continue
        m = _LINE.match(line)
        if not m:
            errs.add(no, f"expected Name=value, got {raw.strip()!r}")
            continue
        name, value = m.groups()
        t = BY_NAME.get(name.lower())
        if t is None:
            errs.add(no, f"unknown tunable {name!r}")
            continue
        if t.obsolete:
            errs.add(no, f"tunable {t.name} is obsolete")
            continue
        try:
            v = int(value, 0)
        except ValueError:
            errs.add(no, f"tunable {t.name}: {value!r} is not an integer")
            continue
        if not 0 <= v <= U32_MAX:
            errs.add(no, f"tunable {t.name}: {v} is out of range")
            continue
        out[t.name] = v
    errs.raise_if_any()
    return out


def parse_tunables_file(path: str) -> dict[str, int]:
    with open(path) as f:
        return parse_tunables_text(f.read(), path)
