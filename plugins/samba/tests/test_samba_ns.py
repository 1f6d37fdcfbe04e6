"""The samba plugin with Debian's real smbd in every node of a namespace cluster.

smbd is started by the plugin's startup event (its start command: ctdbd's child, so it
runs in the node's network namespace) and serves one shared directory; smbclient in
the client namespace puts and gets a file through a public address. Killing smbd on
the address's holder makes that node UNHEALTHY at once (the plugin's watcher), the
address moves to a healthy node, and the same client command is served again through
the same address."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ctdb_localcluster import netns
from ctdb_localcluster.cluster import LocalCluster
from ctdb_localcluster.samba import NodeSockets, client_conf, install_init_script, plugin_options, smb_conf, smbd_pid

SMBD = "/usr/sbin/smbd"
SMBCLIENT = "/usr/bin/smbclient"
USER = "root%ctdb-py-secret"
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]

pytestmark = [pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(SMBD), reason="Debian's samba (/usr/sbin/smbd) is not installed")]


def samba_cluster_options(root: Path, share: Path, n: int = 3) -> dict:
    return {**plugin_options(root, share, n), "tunables": (("MonitorInterval", "5"),)}


@pytest.fixture
def samba_cluster(tmp_path):
    reason = netns.available()
    if reason is not None:
        pytest.skip(f"namespace cluster: {reason}")
    root = tmp_path / "cluster"
    share = tmp_path / "share"
    share.mkdir()
    lc = LocalCluster(root, f"smbpl{os.getpid() % 100000}", cleanup_at_exit=True)
    try:
        lc.up(n=3, **samba_cluster_options(root, share))
        yield lc, root, tmp_path
    finally:
        lc.down()


def ctdb(lc, pnn, *args):
    return lc.run(pnn, "ctdb", *args, timeout=30).stdout


def holders(lc) -> dict[str, int]:
    for p in range(3):
        if lc.running(p):
            rows = [ln.strip("|").split("|") for ln in ctdb(lc, p, "-X", "ip").splitlines()[1:] if ln]
            return {r[0]: int(r[1]) for r in rows}
    return {}


def unhealthy(lc, pnn) -> bool:
    return any(r["Unhealthy"] == "1" for r in lc.status_table(0) if int(r["Node"]) == pnn)


def smbclient(lc, cconf, work, ip, commands):
    r = lc.client(SMBCLIENT, f"//{ip}/share", "-p", "445", "-U", USER, "-s", str(cconf),
                  "-c", f"lcd {work}; {commands}", check=False, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_killed_smbd_moves_its_address_and_the_client_is_served_again(samba_cluster):
    lc, root, tmp = samba_cluster
    lc.wait_ok(timeout=120)  # every node healthy: the plugin started smbd and its monitor passed
    name, password = USER.split("%")
    r = lc.run(0, "smbpasswd", "-c", str(root / "node0" / "samba" / "smb.conf"), "-a", "-s", name,
               input=f"{password}\n" * 2, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    lc.wait(lambda: sorted(holders(lc).get(ip, -1) for ip in PUBLIC) == [0, 1, 2], timeout=60)
    ip = PUBLIC[0]
    victim = holders(lc)[ip]
    cconf = client_conf(tmp / "client")
    work = tmp / "work"
    work.mkdir()
    (work / "before.txt").write_text("written before smbd died\n")
    code, out = smbclient(lc, cconf, work, ip, "put before.txt")
    assert code == 0, out

    pid = smbd_pid(root, victim)
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    lc.wait(lambda: unhealthy(lc, victim), timeout=30, interval=0.05)
    t_unhealthy = time.monotonic()
    lc.wait(lambda: holders(lc).get(ip) not in (None, victim), timeout=30, interval=0.05)
    t_moved = time.monotonic()
    (work / "before.txt").unlink()

    def served() -> bool:
        return smbclient(lc, cconf, work, ip, "get before.txt")[0] == 0
    lc.wait(served, timeout=60, interval=0.1)
    t_served = time.monotonic()
    print(f"\nsmbd SIGKILL on node {victim}: UNHEALTHY after {t_unhealthy - t0:.2f} s, "
          f"{ip} moved after {t_moved - t0:.2f} s, client served again after {t_served - t0:.2f} s")
    assert (work / "before.txt").read_text() == "written before smbd died\n"
    # the watcher, not a monitor event, made the node unhealthy (a later monitor event
    # then records "not listening" in scriptstatus)
    log = (root / f"node{victim}" / "log.ctdb").read_text(errors="replace")
    assert f"plugin samba reports its service failed: ERROR: smbd (pid {pid}) exited" in log
    status = ctdb(lc, victim, "scriptstatus")
    assert "samba                ERROR" in status, status
    import json
    nodes = json.loads(ctdb(lc, victim, "status", "--json"))["nodes"]
    assert next(n for n in nodes if n["pnn"] == victim)["unhealthy_reason"].startswith("samba: ")
    assert t_moved - t0 < 15

    # 4.17's 50.samba does not restart smbd: the administrator does; the next monitor
    # event finds it healthy and the addresses rebalance
    r = lc.run(victim, "sh", "-c", f"{SMBD} -D -s {root / f'node{victim}' / 'samba' / 'smb.conf'}", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    lc.wait(lambda: not unhealthy(lc, victim), timeout=60)
    lc.wait(lambda: sorted(holders(lc).get(i, -1) for i in PUBLIC) == [0, 1, 2], timeout=60)


def test_disabled_plugin_does_nothing_and_event_script_commands(samba_cluster):
    lc, root, _tmp = samba_cluster
    lc.wait_ok(timeout=120)
    out = lc.run(1, "ctdb", "event", "script", "list", "legacy").stdout
    assert "* 50.samba\n" in out and "* 10.interface\n" in out
    assert lc.run(1, "ctdb", "event", "script", "disable", "legacy", "50.samba").returncode == 0
    assert "  50.samba\n" in lc.run(1, "ctdb", "event", "script", "list", "legacy").stdout
    os.kill(smbd_pid(root, 1), signal.SIGKILL)  # a disabled plugin neither watches nor monitors smbd

    def disabled_in_status() -> bool:
        return "samba                DISABLED" in ctdb(lc, 1, "scriptstatus")
    lc.wait(disabled_in_status, timeout=30)
    time.sleep(2)
    assert not unhealthy(lc, 1)
    # the state lasts across a restart of ctdbd
    lc.kill(1)
    lc.start(1)
    lc.wait(lambda: lc.running(1) and not unhealthy(lc, 1), timeout=60)
    assert "  50.samba\n" in lc.run(1, "ctdb", "event", "script", "list", "legacy").stdout
    assert smbd_pid(root, 1) is None  # the disabled plugin did not start smbd


def test_a_node_configured_only_with_the_seeds_sysconfig_runs_smbd(tmp_path):
    """The seed's /etc/sysconfig/ctdb alone: CTDB_MANAGES_SAMBA enables the plugin, its
    CTDB_SAMBA_* and CTDB_SERVICE_SMB variables are its settings, and smbd is started
    through the init system (an init script here, as on an administrator's node)."""
    reason = netns.available()
    if reason is not None:
        pytest.skip(f"namespace cluster: {reason}")
    root = tmp_path / "cluster"
    share = tmp_path / "share"
    share.mkdir()
    lc = LocalCluster(root, f"smbsc{os.getpid() % 100000}", cleanup_at_exit=True)
    init = f"ctdbtest-smbd-{os.getpid()}"
    for p in range(2):
        smb_conf(root / f"node{p}" / "samba", NodeSockets(root), p, share, port=445, own_address=False)
    install_init_script(init, lc, root, tmp_path / "init-map", 2)
    try:
        # testparm reads the machine's smb.conf (4.17's 50.samba has no other), so the
        # ports and shares come from these variables, as a 4.17 administrator sets them
        lc.up(n=2, sysconfig=("CTDB_MANAGES_SAMBA=yes", f"CTDB_SERVICE_SMB={init}",
                              "CTDB_SAMBA_CHECK_PORTS=445", "CTDB_SAMBA_SKIP_SHARE_CHECK=yes",
                              # no nmbd: an empty service name does nothing, as in 4.17
                              "CTDB_SERVICE_NMB="))
        lc.wait_ok(timeout=120)
        for p in range(2):
            assert smbd_pid(root, p) is not None, f"no smbd on node {p}"
            out = lc.run(p, "ctdb", "event", "script", "list", "legacy").stdout
            assert "* 50.samba\n" in out and "* 48.netbios\n" in out, out
            assert "samba                OK" in ctdb(lc, p, "scriptstatus")
        check = lc.run(0, "ctdbd", "--check-config", "--sysconfig", str(root / "node0" / "sysconfig"), check=False)
        assert check.returncode == 0, check.stderr
        assert "check ports = 445\t# CTDB_SAMBA_CHECK_PORTS, from" in check.stdout
        assert f"service name = {init}\t# CTDB_SERVICE_SMB" in check.stdout
    finally:
        lc.down()
        (Path("/etc/init.d") / init).unlink(missing_ok=True)
