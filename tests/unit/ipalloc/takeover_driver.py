"""Python port of the upstream test driver, ``ctdb_takeover_tests ipalloc``.

samba-4.17.12 ctdb/tests/src/ctdb_takeover_tests.c (ctdb_test_init,
read_ctdb_public_ip_info, get_runstate) and ipalloc_read_known_ips.c: the node
states argument (flags per node), stdin lines ``IP CURRENT_PNN [ALLOWED,…]`` (or,
with ``multi``, one block of ``IP PNN`` lines per node separated by blank
lines), CTDB_TEST_RUNSTATE, CTDB_SET_NoIPTakeover, CTDB_IP_ALGORITHM and
CTDB_TEST_LOGLEVEL.  NoIPFailback is always off and there is no force-rebalance
list, as in the C driver.
"""

from __future__ import annotations

import ipaddress

import ctdb_ipalloc as ia


def _values(text: str, numnodes: int) -> list[int]:
    if text == "1":
        return [1] * numnodes
    vals = [int(t, 0) for t in text.split(",") if t]
    if len(vals) != numnodes:
        raise ValueError("Wrong number of values")
    return vals


def _read_block(lines: list[str], pos: int, numnodes: int, multi: bool,
                known: list[list[ia.PublicIP]]) -> tuple[list[ia.PublicIP], int]:
    own: list[ia.PublicIP] = []
    while pos < len(lines):
        line = lines[pos]
        pos += 1
        if line == "":
            break
        toks = line.replace("\t", " ").split()
        if not toks:
            continue
        addr = ipaddress.ip_address(toks[0])
        pnn = int(toks[1]) if len(toks) > 1 else -1
        ip = ia.PublicIP(addr, pnn)
        own.append(ip)
        rest = toks[2].split("#")[0] if len(toks) > 2 else ""
        if len(toks) > 2 and toks[2].startswith("#"):
            rest = ""
        if not rest:
            if not multi:
                for n in range(numnodes):
                    known[n].append(ip)
            continue
        if multi:
            raise ValueError("ERROR, bad token")
        for t in rest.split(","):
            if t:
                known[int(t)].append(ip)
    return own, pos


def run(algorithm: str, nodestates: str, stdin_lines: list[str], *, multi: bool = False,
        env: dict[str, str] | None = None, loglevel: str | None = None
        ) -> tuple[list[str], list[str]]:
    """Return (log lines, output lines) as the C driver would print them."""
    env = env or {}
    flags = [int(t, 0) for t in nodestates.split(",") if t]
    num = len(flags)
    known: list[list[ia.PublicIP]] = [[] for _ in range(num)]
    if multi:
        pos = 0
        for n in range(num):
            known[n], pos = _read_block(stdin_lines, pos, num, True, known)
    else:
        _read_block(stdin_lines, 0, num, False, known)
    runstate = (_values(env["CTDB_TEST_RUNSTATE"], num) if "CTDB_TEST_RUNSTATE" in env
                else [ia.RUNSTATE_RUNNING] * num)
    no_ip_takeover = int(env.get("CTDB_SET_NoIPTakeover", "0"), 0) != 0
    nodes = []
    for n in range(num):
        avail = [ip.addr for ip in known[n]] if runstate[n] == ia.RUNSTATE_RUNNING else []
        if flags[n] & (ia.INACTIVE | ia.DISABLED):
            avail = []
        nodes.append(ia.NodeState(pnn=n, flags=flags[n], available=frozenset(avail),
                                  runstate=runstate[n]))
    merged = ia.merge_known_ips(known)
    level = ia.LOG_LEVELS.get((loglevel or "").upper(), ia.LOG_DEBUG)
    log: list[str] = []
    result = ia.allocate_list(algorithm, merged, nodes, no_ip_takeover=no_ip_takeover,
                              no_ip_failback=False, log=lambda lvl, msg: log.append(msg),
                              log_level=level)
    return log, [f"{ip.addr} {ip.pnn}" for ip in result]
