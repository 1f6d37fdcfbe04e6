"""Watching a namespace cluster from a test: what the daemons say, read fast enough
for failovers that last less than a second, and what a client in the client namespace
gets."""

from __future__ import annotations

import json
import time
from pathlib import Path

UNASSIGNED = 0xFFFFFFFF
NODE_FLAGS_UNHEALTHY = 0x2


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> float:
    """Poll ``predicate`` until true; the seconds it took (AssertionError on timeout,
    with the last error the predicate raised)."""
    t0 = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            if predicate():
                return time.monotonic() - t0
        except Exception as e:  # noqa: BLE001 - a node may be busy for a moment
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last})" if last else ""))


def ctdbd_log(lc, pnn: int) -> str:
    return (Path(lc.node(pnn).dir) / "log.ctdb").read_text(errors="replace")


def ctdb(lc, pnn: int, *args: str) -> str:
    """Our ``ctdb`` tool on node pnn; its stdout."""
    return lc.run(pnn, "ctdb", *args, timeout=30).stdout


def status_rows(lc, pnn: int) -> dict[int, dict[str, str]]:
    """``ctdb -X status`` on node pnn: pnn -> the row keyed by the header names."""
    lines = [ln.strip("|").split("|") for ln in ctdb(lc, pnn, "-X", "status").splitlines() if ln.startswith("|")]
    return {int(r[0]): dict(zip(lines[0], r)) for r in lines[1:]}


def unhealthy(lc, observer: int, pnn: int) -> bool:
    return status_rows(lc, observer)[pnn]["Unhealthy"] == "1"


class Observer:
    """Node flags and address holders as the daemons of some nodes see them, read over
    their unix sockets (a control round trip, not a `ctdb` process: the states of a
    failover can last less than a second). Each node knows the holders of the addresses
    it has been told about; the new holder of an address always knows it holds it."""

    def __init__(self, lc, pnns) -> None:
        from ctdbcore.client.sync import Client

        self.clients = [Client(lc.socket(p), timeout=10) for p in pnns]

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def unhealthy(self, pnn: int) -> bool:
        return any(n.pnn == pnn and n.flags & NODE_FLAGS_UNHEALTHY for n in self.clients[0].get_nodemap().nodes)

    def holders(self, ip: str) -> set[int | None]:
        seen: set[int | None] = set()
        for c in self.clients:
            for i in c.get_public_ips().ips:
                if str(i.addr).split(":")[0] == ip:
                    seen.add(None if i.pnn == UNASSIGNED else i.pnn)
        return seen

    def moved(self, ip: str, old: int) -> int | None:
        """A node other than old that holds ip in some observed node's view."""
        return next((h for h in self.holders(ip) if h not in (None, old)), None)


def kernel_holders(lc, public, nodes=(0, 1, 2)) -> dict[str, list[int]]:
    """public address -> the running nodes whose eth1 carries it, read from the kernel."""
    out: dict[str, list[int]] = {ip: [] for ip in public}
    for p in nodes:
        if not lc.running(p):
            continue
        res = lc.run(p, "ip", "-j", "addr", "show", "dev", "eth1", timeout=10)
        for link in json.loads(res.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") in out:
                    out[a["local"]].append(p)
    return out


def holder_of(lc, ip: str, nodes=(0, 1, 2)) -> int | None:
    """The node holding ip, when the kernel (eth1) and `ctdb ip` on every node agree."""
    kernel = kernel_holders(lc, [ip], nodes)[ip]
    if len(kernel) != 1:
        return None
    for p in nodes:
        rows = [ln.strip("|").split("|") for ln in ctdb(lc, p, "-X", "ip").splitlines()[1:] if ln]
        if {r[0]: int(r[1]) for r in rows}.get(ip) != kernel[0]:
            return None
    return kernel[0]


def curl(lc, url: str, timeout: float = 10.0) -> str:
    """What curl in the client namespace gets from url, retried for up to timeout s (a
    plugin may restart its server when addresses change, closing the port for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        r = lc.client("curl", "-sS", "--max-time", "10", url, check=False, timeout=30)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.returncode == 0, (url, r.returncode, r.stdout, r.stderr)
    return r.stdout.strip()
