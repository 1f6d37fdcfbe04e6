"""The leader and usable-node choices of 11.natgw and 91.lvs, checked against 4.17's
own helpers (/usr/libexec/ctdb/ctdb_natgw and ctdb_lvs) fed the same
``ctdb -X nodestatus all`` table through a fake ``$CTDB``, over every combination
of node flags that matters to their rules."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from ctdbcore.builtin.groups import (
    GroupError,
    NodeRow,
    is_follower_only,
    lvs_leader,
    lvs_usable,
    natgw_leader,
    parse_group_text,
    parse_nodestatus_x,
)

HELPERS = Path("/usr/libexec/ctdb")
needs_helpers = pytest.mark.skipif(not (HELPERS / "ctdb_natgw").exists() or not Path("/etc/ctdb/functions").exists(),
                                   reason="needs Debian's ctdb (4.17's helpers)")

FLAGS = ("disconnected", "unknown", "banned", "disabled", "unhealthy", "stopped")
COLS = ("Node", "IP", "Disconnected", "Unknown", "Banned", "Disabled", "Unhealthy", "Stopped", "Inactive",
        "PartiallyOnline", "ThisNode")


def row(pnn: int, bits: int) -> NodeRow:
    f = {name: bool(bits >> i & 1) for i, name in enumerate(FLAGS)}
    return NodeRow(pnn=pnn, ip=f"10.0.0.{pnn + 1}", inactive=f["disconnected"] or f["banned"] or f["stopped"], **f)


def table(rows: list[NodeRow]) -> str:
    out = ["|" + "|".join(COLS) + "|"]
    for r in rows:
        vals = [str(r.pnn), r.ip, *(str(int(getattr(r, n))) for n in (*FLAGS, "inactive")), "0", "N"]
        out.append("|" + "|".join(vals) + "|")
    return "\n".join(out) + "\n"


class Helper:
    """Runs 4.17's helper with a fake ``$CTDB`` that prints a given table."""

    def __init__(self, base: Path, name: str) -> None:
        self.base, self.name = base, name
        base.mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/ctdb/functions", base / "functions")
        self.fake = base / "fake_ctdb"
        self.fake.write_text(f'#!/bin/sh\ncase "$*" in\n"-X nodestatus all") cat {base}/x ;;\n'
                             f'"nodestatus all") cat {base}/plain ;;\nesac\n')
        self.fake.chmod(0o755)

    def run(self, nodes_file_text: str, rows: list[NodeRow], cmd: str, plain: str = "") -> tuple[int, str]:
        (self.base / "nodes").write_text(nodes_file_text)
        (self.base / "x").write_text(table(rows))
        (self.base / "plain").write_text(plain)
        var = "CTDB_NATGW_NODES" if self.name == "ctdb_natgw" else "CTDB_LVS_NODES"
        env = {"PATH": os.environ["PATH"], "CTDB_BASE": str(self.base), "CTDB": str(self.fake),
               var: str(self.base / "nodes")}
        r = subprocess.run([str(HELPERS / self.name), cmd], env=env, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout


def combos(n_nodes: int, sample: int, seed: int) -> list[list[NodeRow]]:
    """Every flag set of a 1-node cluster and of node 0 beside each of a few states of
    node 1, then a seeded sample of larger clusters."""
    out = [[row(0, b)] for b in range(64)]
    for a, b in itertools.product(range(64), (0, 0b10, 0b10000, 0b100000)):
        out.append([row(0, a), row(1, b)])
    rng = random.Random(seed)
    for _ in range(sample):
        out.append([row(p, rng.choice((0, 0, 1, 2, 4, 8, 16, 32, rng.randrange(64)))) for p in range(n_nodes)])
    return out


@needs_helpers
def test_natgw_leader_matches_4_17s_helper(tmp_path) -> None:
    helper = Helper(tmp_path / "base", "ctdb_natgw")
    for i, rows in enumerate(combos(4, 30, seed=1)):
        # node 1 follower-only in half the cases
        lines = [f"{r.ip}{' follower-only' if (r.pnn == 1 and i % 2) else ''}" for r in rows]
        text = "\n".join(lines) + "\n"
        code, out = helper.run(text, rows, "leader")
        ours = natgw_leader(parse_group_text(text, "nodes", "ctdb_natgw"), rows)
        assert (ours.text + "\n" if ours else "") == out, (rows, text)
        assert code == (0 if ours else 2)


@needs_helpers
def test_lvs_leader_and_list_match_4_17s_helper(tmp_path) -> None:
    helper = Helper(tmp_path / "base", "ctdb_lvs")
    for i, rows in enumerate(combos(4, 30, seed=2)):
        lines = [f"{r.ip}{' follower-only' if (r.pnn == 0 and i % 3 == 0) else ''}" for r in rows]
        text = "\n".join(lines) + "\n"
        group = parse_group_text(text, "nodes", "ctdb_lvs")
        code, out = helper.run(text, rows, "leader")
        ours = lvs_leader(group, rows)
        assert (f"{ours.pnn}\n" if ours else "") == out, (rows, text)
        assert code == (0 if ours else 255)
        if i % 2:
            continue  # "list" on every other case: the same filter as "leader"
        code, out = helper.run(text, rows, "list")
        usable = lvs_usable((g.ip for g in group), rows)
        assert "".join(f"{r.text}\n" for r in usable) == out, (rows, text)
        assert code == 0


def test_natgw_rules_in_words() -> None:
    group = parse_group_text("10.0.0.1\n10.0.0.2\n10.0.0.3 follower-only\n", "f", "p")
    healthy, unhealthy, stopped, disc = (NodeRow(9, "x"), dict(unhealthy=True), dict(stopped=True, inactive=True),
                                         dict(disconnected=True, inactive=True))
    del healthy
    # a healthy follower-only node never leads; an unhealthy leader-capable one does
    rows = [NodeRow(0, "10.0.0.1", **unhealthy), NodeRow(1, "10.0.0.2", **stopped), NodeRow(2, "10.0.0.3")]
    assert natgw_leader(group, rows).pnn == 0
    # stopped beats disconnected, and nothing beats nothing
    rows = [NodeRow(0, "10.0.0.1", **disc), NodeRow(1, "10.0.0.2", **stopped)]
    assert natgw_leader(group, rows).pnn == 1
    assert natgw_leader(group, [NodeRow(0, "10.0.0.1", **disc)]) is None


def test_nodes_file_checks_and_follower_only() -> None:
    with pytest.raises(GroupError, match=r'ctdb_natgw: Invalid options "leader" in  "f"'):
        parse_group_text("10.0.0.1 leader\n", "f", "ctdb_natgw")
    group = parse_group_text("# a comment with words\n10.0.0.1\n 10.0.0.2   follower-only \n", "f", "p")
    assert [(g.ip, g.options) for g in group] == [("#", "a comment with words"), ("10.0.0.1", ""),
                                                  ("10.0.0.2", "follower-only")]
    assert not is_follower_only(group, "10.0.0.1")
    assert is_follower_only(group, "10.0.0.2")
    assert is_follower_only(group, "10.0.0.9")  # not listed: follower-only (4.17's awk exits 0)


def test_parse_nodestatus_x_reads_our_formatter() -> None:
    import ipaddress

    from ctdbcore.protocol import types as T
    from ctdbcore.protocol.constants import NodeFlags
    from ctdbcore.tools import ctdb_format as fmt

    nodes = T.NodeMap(nodes=(
        T.NodeAndFlags(pnn=0, flags=0, addr=T.SockAddr(ip=ipaddress.ip_address("10.0.0.1"), port=4379)),
        T.NodeAndFlags(pnn=1, flags=int(NodeFlags.BANNED | NodeFlags.UNHEALTHY),
                       addr=T.SockAddr(ip=ipaddress.ip_address("10.0.0.2"), port=4379)),
        T.NodeAndFlags(pnn=2, flags=int(NodeFlags.DELETED),
                       addr=T.SockAddr(ip=ipaddress.ip_address("0.0.0.0"), port=4379)),
    ))
    rows = parse_nodestatus_x(fmt.format_nodemap_machine(nodes, 0, sep="|"))
    assert rows == [NodeRow(0, "10.0.0.1"), NodeRow(1, "10.0.0.2", banned=True, unhealthy=True, inactive=True)]
