"""What an administrator does to a node running Debian's real Samba 4.17 `smbd`
(`clustering = yes`) on our ctdbd: `ctdb stop`/`continue`, `ctdb ban`/`unban` and
`ctdb recover`, on a loopback cluster of three of our daemons with smbd on nodes 0 and 1,
set up as in test_real_smbd.py (127.0.0.144-149, 154-159, 184-186).

4.17's behaviour, checked with these same steps against Debian's ctdbd 4.17 (set
CTDBPY_SMBD_ADMIN_IMPL=real to run them so):
* An INACTIVE (stopped or banned) node's smbd stays up, but every new connection's smbd
  child fails to reconnect to ctdbd after the fork (source3/lib/ctdbd_conn.c
  `ctdbd_init_connection_internal`: GET_NODEMAP shows its own node INACTIVE -> "Node is
  not working, can not connect", EIO), so the client sees NT_STATUS_CONNECTION_RESET
  (or _DISCONNECTED); a Samba tool (`net`) on that node cannot start its messaging.
  A client connected before stays connected, but an open through it waits (its smbd
  child cannot take a chain lock of the frozen locking.tdb) until the node is back.
  Controls and messages still reach the node: an open held through it keeps conflicting
  with a delete through node 0 (CHECK_PID_SRVID), `smbcontrol` pings its smbd.
* The other smbd serves throughout, also persistent transactions (`net registry`).
* After `continue`/`unban` the same smbd serves new clients again, with what was written
  meanwhile."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import pytest

from tests.cluster.helpers import wait_for
from tests.interop.test_real_smbd import (PORT, SMBCLIENT, SMBD, USER, Samba, listening, ours,  # noqa: F401 (samba)
                                         samba, stop_group)

IMPL = os.environ.get("CTDBPY_SMBD_ADMIN_IMPL", "ours")

pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists("/usr/sbin/smbd"),
                                 reason="Debian's samba package (/usr/sbin/smbd) is not installed")]


def status(lc, pnn: int = 0) -> str:
    return ours(lc, pnn, "status")


def generation(lc) -> str:
    return re.search(r"^Generation:(\d+)$", status(lc), re.M).group(1)


def excluded(lc, pnn: int, flag: str) -> bool:
    """Node 0 sees pnn flag|INACTIVE, a finished recovery, and pnn out of the vnnmap."""
    s = status(lc)
    row = re.search(rf"^pnn:{pnn} \S+\s+(\S+)", s, re.M).group(1)
    return (flag in row.split("|") and "INACTIVE" in row.split("|") and "Recovery mode:NORMAL" in s
            and not re.search(rf"^hash:\d+ lmaster:{pnn}$", s, re.M))


def rejoined(lc, pnn: int) -> bool:
    s = status(lc)
    return (re.search(rf"^pnn:{pnn} \S+\s+OK\b", s, re.M) is not None and "Recovery mode:NORMAL" in s
            and re.search(rf"^hash:\d+ lmaster:{pnn}$", s, re.M) is not None)


def try_client(smb: Samba, pnn: int, commands: str) -> subprocess.CompletedProcess:
    return subprocess.run([SMBCLIENT, f"//{smb.lc.address(pnn)}/share", "-p", str(PORT), "-U", USER,
                           "-s", str(smb.cconf), "-c", commands], capture_output=True, text=True, timeout=120,
                          cwd=smb.work)


def registry_keys(smb: Samba, pnn: int) -> set[str]:
    r = smb.tool(pnn, "/usr/bin/net", "registry", "enumerate", "HKLM\\Software\\ctdbpy")
    assert r.returncode == 0, (pnn, r.stdout, r.stderr)
    return set(re.findall(r"^Keyname += (\S+)$", r.stdout, re.M))


def create_key(smb: Samba, pnn: int, name: str) -> None:
    r = smb.tool(pnn, "/usr/bin/net", "registry", "createkey", f"HKLM\\Software\\ctdbpy\\{name}")
    assert r.returncode == 0, (pnn, name, r.stdout, r.stderr)


class Session:
    """An interactive smbclient on node pnn: commands in, output lines collected."""

    def __init__(self, smb: Samba, pnn: int) -> None:
        self.p = subprocess.Popen(["stdbuf", "-oL", SMBCLIENT, f"//{smb.lc.address(pnn)}/share", "-p", str(PORT),
                                   "-U", USER, "-s", str(smb.cconf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, cwd=smb.work)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.p.stdout.readline, "")), daemon=True).start()

    def send(self, command: str) -> None:
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()

    def said(self, pattern: str) -> bool:
        return any(re.search(pattern, ln) for ln in self.lines)

    def close(self) -> None:
        self.p.kill()
        self.p.wait()


def ping(smb: Samba, src: int, dst: int) -> None:
    r = smb.tool(src, "/usr/bin/smbcontrol", f"{dst}:{smb.pid(dst)}", "ping")
    assert r.returncode == 0 and r.stdout == f"PONG from pid {dst}:{smb.pid(dst)}\n", (src, dst, r)


@pytest.mark.parametrize("action,base", [("stop", 144), ("ban", 147)])
def test_inactive_node_running_smbd(local_cluster, samba, action, base) -> None:
    """`ctdb stop` (or `ctdb ban 30`) on node 1, then `ctdb continue` (`ctdb unban`)."""
    lc = local_cluster(n=3, loopback=True, loopback_base=base, impl=IMPL)
    lc.wait_ok(timeout=90)
    smb = samba(lc)
    smb.add_user(0)
    (smb.work / "x.txt").write_text("x\n")
    smb.client(0, "put x.txt held.txt")
    create_key(smb, 1, "before")
    sid = smb.tool(0, "/usr/bin/net", "getlocalsid").stdout
    assert sid.startswith("SID for domain CTDBPYSMB is: S-1-5-21-"), sid

    holder = smb.hold_open(1, "held.txt")
    session = Session(smb, 1)  # a client of node 1's smbd, connected before the node is stopped
    try:
        session.send("put x.txt s0.txt")
        wait_for(lambda: session.said(r"^putting file x\.txt as \\s0\.txt "), timeout=30, what="a put through node 1")
        wait_for(lambda: re.search(r"^1:\d+ .* held\.txt ", smb.open_files(0), re.M), timeout=20, interval=0.3,
                 what="smbstatus on node 0 to see held.txt open through node 1")
        child = int(re.search(r"^1:(\d+) .* held\.txt ", smb.open_files(0), re.M).group(1))

        flag = {"stop": "STOPPED", "ban": "BANNED"}[action]
        ours(lc, 1, *{"stop": ("stop",), "ban": ("ban", "30")}[action])
        wait_for(lambda: excluded(lc, 1, flag), timeout=60, interval=0.5,
                 what=f"node 1 {flag}, out of the vnnmap after a recovery")

        # node 0's smbd serves throughout, also a persistent transaction without node 1
        out = smb.client(0, "put x.txt during.txt; get during.txt during-copy.txt; ls")
        assert "during.txt" in out and (smb.work / "during-copy.txt").read_text() == "x\n", out
        create_key(smb, 0, "during")
        assert registry_keys(smb, 0) == {"before", "during"}

        # node 1's smbd is still there, but a new client's smbd child cannot reconnect to
        # the inactive node's daemon after the fork and drops the connection; the same for
        # a Samba tool on node 1
        r = try_client(smb, 1, "ls")
        assert r.returncode != 0 and re.search(r"NT_STATUS_CONNECTION_(RESET|DISCONNECTED)", r.stdout + r.stderr), r
        r = smb.tool(1, "/usr/bin/net", "registry", "enumerate", "HKLM\\Software\\ctdbpy")
        assert r.returncode != 0 and "ctdbd_init_connection_internal failed" in r.stderr, r
        smb.check_alive()

        # controls and messages still reach node 1: its client's open (whose smbd child
        # lives on) still conflicts with a delete through node 0, and node 1's parent
        # smbd answers a ping from node 0
        assert os.path.exists(f"/proc/{child}") and holder.poll() is None
        r = try_client(smb, 0, "del held.txt")
        assert "NT_STATUS_SHARING_VIOLATION" in r.stdout + r.stderr, r
        assert (smb.share / "held.txt").exists()
        ping(smb, 0, 1)

        # the client connected to node 1 before stays connected, but an open through it
        # waits: its smbd child cannot lock a record of the frozen locking.tdb
        session.send("put x.txt s1.txt")
        time.sleep(3)
        assert not session.said(r"s1\.txt") and session.p.poll() is None, session.lines

        ours(lc, 1, *{"stop": ("continue",), "ban": ("unban",)}[action])
        wait_for(lambda: rejoined(lc, 1), timeout=60, interval=0.5, what="node 1 back in the vnnmap")

        # ... and goes on once the node is back
        wait_for(lambda: session.said(r"^putting file x\.txt as \\s1\.txt "), timeout=30,
                 what="the put waiting on node 1 to finish")
        assert (smb.share / "s1.txt").read_text() == "x\n"

        # the same smbd on node 1 serves new clients again, with what was written meanwhile
        wait_for(lambda: try_client(smb, 1, "ls").returncode == 0, timeout=30, interval=0.5,
                 what="node 1's smbd to accept a client again")
        smb.client(1, "get during.txt during-1.txt")
        assert (smb.work / "during-1.txt").read_text() == "x\n"
        for pnn in (0, 1):
            assert registry_keys(smb, pnn) == {"before", "during"}, pnn
        assert smb.tool(1, "/usr/bin/net", "getlocalsid").stdout == sid
        create_key(smb, 1, "after")
        assert registry_keys(smb, 0) == {"before", "during", "after"}
        ping(smb, 1, 0)
        ping(smb, 0, 1)
        # the client of node 1 that was connected all along still holds its open
        r = try_client(smb, 0, "del held.txt")
        assert "NT_STATUS_SHARING_VIOLATION" in r.stdout + r.stderr, r
        assert holder.poll() is None
    finally:
        session.close()
        holder.stdin.close()
        holder.wait(timeout=30)
    wait_for(lambda: "held.txt" not in smb.open_files(0), timeout=20, interval=0.3, what="the open to go")
    r = try_client(smb, 0, "del held.txt")
    assert r.returncode == 0 and "NT_STATUS" not in r.stdout + r.stderr and not (smb.share / "held.txt").exists(), r
    smb.check_alive()


def test_notify_messages_and_registry_across_recovery(local_cluster, samba) -> None:
    """A change notify registered through node 1 fires for a file put through node 0 after
    `ctdb recover` (notifyd keeps its registrations); messages cross the nodes; what smbd
    keeps in its persistent databases (registry.tdb, secrets.tdb, passdb.tdb) is there
    on both nodes after the recovery."""
    lc = local_cluster(n=3, loopback=True, loopback_base=154, impl=IMPL)
    lc.wait_ok(timeout=90)
    smb = samba(lc)
    smb.add_user(1)
    (smb.work / "x.txt").write_text("x\n")
    for i in range(5):
        create_key(smb, i % 2, f"k{i}")
    sids = {smb.tool(pnn, "/usr/bin/net", "getlocalsid").stdout for pnn in (0, 1)}
    assert len(sids) == 1, sids

    watcher = Session(smb, 1)
    try:
        watcher.send("notify \\")
        time.sleep(1)  # the watch is registered and its filter has reached node 0's notifyd

        for round_ in range(2):
            gen = generation(lc)
            ours(lc, 2, "recover")
            wait_for(lambda: generation(lc) != gen and "Recovery mode:NORMAL" in status(lc)
                     and "Recovery mode:NORMAL" in status(lc, 1), timeout=60, interval=0.5,
                     what="a new generation after ctdb recover")
            name = f"notified{round_}.txt"
            smb.client(0, f"put x.txt {name}")
            wait_for(lambda: watcher.said(re.escape(name)), timeout=30, what=f"the notification of {name} on node 1")
            assert watcher.said(rf"^[0-9a-f]{{4}} {re.escape(name)}\n$"), watcher.lines
            assert watcher.p.poll() is None

            for src, dst in ((0, 1), (1, 0)):
                ping(smb, src, dst)
            r = smb.tool(0, "/usr/bin/smbcontrol", "-t", "3", "all", "ping")
            for pnn in (0, 1):
                assert f"PONG from pid {pnn}:{smb.pid(pnn)}\n" in r.stdout, r

            for pnn in (0, 1):
                assert registry_keys(smb, pnn) >= {f"k{i}" for i in range(5)}, pnn
            assert {smb.tool(pnn, "/usr/bin/net", "getlocalsid").stdout for pnn in (0, 1)} == sids
            create_key(smb, round_, f"r{round_}")  # and a write after each recovery, through either node
        for pnn in (0, 1):
            assert registry_keys(smb, pnn) == {f"k{i}" for i in range(5)} | {"r0", "r1"}, pnn
        # the user added through node 1 before the recoveries logs in through node 0
        out = smb.client(0, "get notified0.txt n0.txt")
        assert (smb.work / "n0.txt").read_text() == "x\n", out
    finally:
        watcher.close()
    smb.check_alive()


@pytest.mark.parametrize("action,base", [("stop", 157), ("ban", 184)])
def test_smbd_start_on_inactive_node(local_cluster, samba, action, base) -> None:
    """smbd (re)started on a stopped or banned node refuses to run (4.17's
    ctdbd_init_connection_internal: "Node is not working, can not connect", then
    "clustering=yes but ctdbd connect failed"); it runs once the node is back, after
    `ctdb continue` or when the ban runs out by itself."""
    lc = local_cluster(n=3, loopback=True, loopback_base=base, impl=IMPL)
    lc.wait_ok(timeout=90)
    smb = samba(lc)
    smb.add_user(0)
    create_key(smb, 0, "before")
    flag = {"stop": "STOPPED", "ban": "BANNED"}[action]
    ours(lc, 1, *{"stop": ("stop",), "ban": ("ban", "25")}[action])
    wait_for(lambda: excluded(lc, 1, flag), timeout=60, interval=0.5, what=f"node 1 {flag}")
    stop_group(smb.procs[1][0])
    r = subprocess.run([SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(smb.conf(1))],
                       capture_output=True, text=True, timeout=60, cwd=smb.tmp / "smbd1", stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "Node is not working, can not connect" in r.stdout, r
    assert "clustering=yes but ctdbd connect failed" in r.stdout, r
    assert not listening(lc.address(1))
    out = smb.client(0, "ls")  # node 0 serves meanwhile
    assert "blocks available" in out, out
    create_key(smb, 0, "during")

    if action == "stop":
        ours(lc, 1, "continue")
    wait_for(lambda: rejoined(lc, 1), timeout=120, interval=0.5, what="node 1 back in the vnnmap")
    smb.start_one(1)
    (smb.work / "x.txt").write_text("x\n")
    smb.client(1, "put x.txt from1.txt")
    smb.client(0, "get from1.txt from1-copy.txt")
    assert (smb.work / "from1-copy.txt").read_text() == "x\n"
    for pnn in (0, 1):
        assert registry_keys(smb, pnn) == {"before", "during"}, pnn
    ping(smb, 0, 1)
    smb.check_alive()
