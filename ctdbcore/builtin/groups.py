"""Node groups of 11.natgw and 91.lvs: the nodes file (``IP [follower-only]`` lines)
and the choice of the leader and of the usable nodes from ``ctdb -X nodestatus all``,
as 4.17's helpers ``ctdb_natgw`` and ``ctdb_lvs`` make them. The plugins and the
``ctdb natgw`` / ``ctdb lvs`` commands share these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

FOLLOWER_ONLY = "follower-only"


class GroupError(Exception):
    """What the helper prints before exiting 1 (its ``die``)."""


@attrs.frozen
class GroupLine:
    """One line of the nodes file, split as the shell's ``read _ip _options`` does."""

    ip: str
    options: str

    @property
    def follower_only(self) -> bool:
        return self.options == FOLLOWER_ONLY

    @property
    def comment(self) -> bool:
        return self.ip.startswith("#")


def parse_group_text(text: str, path: str, prog: str) -> list[GroupLine]:
    """The lines of a nodes file (trailing newlines dropped, as ``$(cat FILE)``, so an
    empty file is one empty line); options other than ``follower-only`` are an error, comments are not checked."""
    lines = []
    for raw in text.rstrip("\n").split("\n"):
        words = raw.strip(" \t").split(None, 1)
        ip = words[0] if words else ""
        options = words[1].strip(" \t") if len(words) > 1 else ""
        line = GroupLine(ip, options)
        if not line.comment and options not in ("", FOLLOWER_ONLY):
            raise GroupError(f'{prog}: Invalid options "{options}" in  "{path}"')
        lines.append(line)
    return lines


def read_group_file(path: str, prog: str, what: str) -> list[GroupLine]:
    """Read and check the nodes file; :class:`GroupError` "<prog>: <what> nodes file ... not found"."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        raise GroupError(f'{prog}: {what} nodes file "{path}" not found') from None
    return parse_group_text(text, path, prog)


def is_follower_only(lines: Iterable[GroupLine], my_ip: str | None) -> bool:
    """4.17 ``ctdb_natgw_follower_only``/``lvs_follower_only``: the first line for this
    node's address decides; a node that is not listed counts as follower-only."""
    for line in lines:
        if line.ip == my_ip:
            return FOLLOWER_ONLY in line.options
    return True


@attrs.frozen
class NodeRow:
    """One row of ``ctdb -X nodestatus all``."""

    pnn: int
    ip: str
    disconnected: bool = False
    unknown: bool = False
    banned: bool = False
    disabled: bool = False
    unhealthy: bool = False
    stopped: bool = False
    inactive: bool = False

    @property
    def text(self) -> str:
        return f"{self.pnn} {self.ip}"


def parse_nodestatus_x(text: str) -> list[NodeRow]:
    """The rows of ``ctdb -X nodestatus all`` (``|Node|IP|Disconnected|...|``)."""
    rows = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = line.strip().strip("|").split("|")
        if header is None:
            header = cells
            continue
        d = dict(zip(header, cells))
        try:
            rows.append(NodeRow(
                pnn=int(d["Node"]), ip=d["IP"],
                disconnected=d.get("Disconnected") == "1", unknown=d.get("Unknown") == "1",
                banned=d.get("Banned") == "1", disabled=d.get("Disabled") == "1",
                unhealthy=d.get("Unhealthy") == "1", stopped=d.get("Stopped") == "1",
                inactive=d.get("Inactive") == "1"))
        except (KeyError, ValueError):
            continue
    return rows


def _healthy(r: NodeRow) -> bool:
    # not UNKNOWN, DISABLED, UNHEALTHY or INACTIVE (DISCONNECTED, BANNED, STOPPED)
    return not (r.unknown or r.disabled or r.unhealthy or r.inactive)


def natgw_leader(lines: Sequence[GroupLine], rows: Sequence[NodeRow]) -> NodeRow | None:
    """4.17 ``ctdb_natgw leader`` (``find_leader``): among the nodes that may lead (no
    option), in nodestatus order, the first fully healthy one; else the first that is
    not DISCONNECTED, DISABLED or STOPPED (UNHEALTHY or BANNED will do); else the first
    that is not DISCONNECTED or DISABLED (STOPPED will do); else None."""
    may_lead = {line.ip for line in lines if line.options == ""}
    candidates = [r for r in rows if r.ip in may_lead]
    for rule in (_healthy,
                 lambda r: not (r.disconnected or r.disabled or r.stopped),
                 lambda r: not (r.disconnected or r.disabled)):
        for r in candidates:
            if rule(r):
                return r
    return None


def lvs_usable(ips: Iterable[str], rows: Sequence[NodeRow]) -> list[NodeRow]:
    """4.17 ``ctdb_lvs`` ``filter_nodes``: the fully healthy nodes among ``ips``, or if
    there are none, those that are neither DISABLED nor INACTIVE (UNHEALTHY will do)."""
    wanted = set(ips)
    candidates = [r for r in rows if r.ip in wanted]
    healthy = [r for r in candidates if _healthy(r)]
    if healthy:
        return healthy
    return [r for r in candidates if not (r.disabled or r.inactive)]


def lvs_leader(lines: Sequence[GroupLine], rows: Sequence[NodeRow]) -> NodeRow | None:
    """4.17 ``ctdb_lvs leader``: the first usable node among those that may lead."""
    usable = lvs_usable((line.ip for line in lines if line.options == ""), rows)
    return usable[0] if usable else None
