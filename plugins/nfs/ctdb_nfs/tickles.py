"""4.17's ``update_tickles PORT`` (``$CTDB_BASE/functions``): make ctdbd's tickle
lists for this node's public addresses match the established connections on PORT.

Done as 4.17 does it, through the ``ctdb`` tool and ``ss``, each run by the plugin's
command runner: ``ctdb -X ip`` (the addresses this node holds), ``ss -tn state
established ( src [IP] || ... ) ( sport == :PORT )`` (the connections),
``ctdb -X gettickles IP PORT`` (what ctdbd has), then ``ctdb addtickle`` and
``ctdb deltickle`` with the difference on standard input ("CLIENT:PORT SERVER:PORT"
lines; ctdbd sends TCP_ADD_DELAYED_UPDATE / TCP_REMOVE and the holder pushes the list
to the other nodes). Failures are logged, not fatal, as in 4.17.
"""

from __future__ import annotations

import logging

from ctdbcore.plugins.service import CommandRunner

CTDB_TIMEOUT = 10.0


def held_ips(runner: CommandRunner, pnn: int, ctdb: str = "ctdb") -> list[str]:
    """The public addresses node ``pnn`` holds, from ``ctdb -X ip``."""
    res = runner.run((ctdb, "-X", "ip"), timeout=CTDB_TIMEOUT)
    ips = []
    for line in res.stdout.splitlines()[1:]:
        f = line.split("|")
        if len(f) >= 3 and f[2] == str(pnn):
            ips.append(f[1])
    return ips


def connections(runner: CommandRunner, ips: list[str], port: int) -> set[str]:
    """Established connections to ``ips`` on local ``port``, as "CLIENT SERVER" lines."""
    ip_filter = " || ".join(f"src [{ip}]" for ip in ips)
    res = runner.run(("ss", "-tn", "state", "established", f"( {ip_filter} )", f"( sport == :{port} )"),
                     timeout=CTDB_TIMEOUT)
    out = set()
    for line in res.stdout.splitlines()[1:]:
        f = line.split()
        # ss: Recv-Q Send-Q Local Peer (state given: no State column)
        if len(f) >= 4:
            out.add(f"{f[3]} {f[2]}".replace("[", "").replace("]", ""))
    return out


def registered(runner: CommandRunner, ips: list[str], port: int, ctdb: str = "ctdb") -> set[str]:
    out = set()
    for ip in ips:
        res = runner.run((ctdb, "-X", "gettickles", ip, str(port)), timeout=CTDB_TIMEOUT)
        for line in res.stdout.splitlines()[1:]:
            f = line.split("|")
            if len(f) >= 5:
                out.add(f"{f[1]}:{f[2]} {f[3]}:{f[4]}")
    return out


def update_tickles(runner: CommandRunner, pnn: int, port: int, logger: logging.Logger,
                   ctdb: str = "ctdb") -> tuple[set[str], set[str]]:
    """Sync ctdbd's tickles with the connections; returns (added, removed)."""
    ips = held_ips(runner, pnn, ctdb)
    if not ips:
        return set(), set()
    conns = connections(runner, ips, port)
    have = registered(runner, ips, port, ctdb)
    add, remove = conns - have, have - conns
    for verb, todo in (("addtickle", add), ("deltickle", remove)):
        if not todo:
            continue
        res = runner.run((ctdb, verb), timeout=CTDB_TIMEOUT, input="".join(c + "\n" for c in sorted(todo)))
        if not res.ok:
            logger.warning("ctdb %s failed: %s", verb, res.output)
    return add, remove
