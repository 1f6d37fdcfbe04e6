"""The samba and netbios plugins, event by event, with a recording command runner."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from ctdb_samba import netbios, probe, smbd, smbconf
from ctdbcore.plugins import service

TESTPARM = """# Global parameters
[global]
\tpid directory = {pid}
\tsmb ports = {ports}
\tinclude = /etc/samba/extra.conf
\twinbind separator = +

[share]
\tpath = "{share}"
\tread only = No

[homes]
\tpath = /home/%U
"""


@pytest.fixture
def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen()
    yield s
    s.close()


def harness(plugin_harness, tmp_path, port, runner=None, **settings):
    h = plugin_harness(smbd, "samba", runner=runner, settings={"start wait": "0", "probe": "no", **settings})
    text = TESTPARM.format(pid=tmp_path / "pid", ports=port, share=tmp_path)
    h.runner.respond(["testparm", "-v", "-s"], stdout=text)
    return h


def test_monitor_ok_and_the_cache_drops_includes(plugin_harness, tmp_path, listener):
    h = harness(plugin_harness, tmp_path, listener.getsockname()[1])
    assert h.output("monitor") == (0, "")
    cache = (h.plugin_ctx.state_dir / "smb.conf.cache").read_text()
    assert "include" not in cache and "winbind separator" not in cache and "smb ports" in cache


def test_monitor_port_not_listening(plugin_harness, tmp_path, listener):
    port = listener.getsockname()[1]
    listener.close()
    h = harness(plugin_harness, tmp_path, port)
    assert h.output("monitor") == (1, f"samba not listening on TCP port {port}")


def test_check_ports_setting_overrides_smb_ports(plugin_harness, tmp_path, listener):
    h = harness(plugin_harness, tmp_path, 1, **{"check ports": str(listener.getsockname()[1])})
    assert h.output("monitor") == (0, "")


def test_share_check_and_its_switch(plugin_harness, tmp_path, listener):
    port = listener.getsockname()[1]
    h = plugin_harness(smbd, "samba", settings={"probe": "no"})
    h.runner.respond(["testparm"], stdout=TESTPARM.format(pid=tmp_path, ports=port, share=tmp_path / "gone"))
    assert h.output("monitor") == (1, f'ERROR: samba directory "{tmp_path / "gone"}" not available')
    h = plugin_harness(smbd, "samba2", options={"CTDB_SAMBA_SKIP_SHARE_CHECK": "yes", "CTDB_SAMBA_CHECK_PORTS": str(port)},
                       settings={"probe": "no"})
    h.runner.respond(["testparm"], stdout=TESTPARM.format(pid=tmp_path, ports=port, share=tmp_path / "gone"))
    assert h.output("monitor") == (0, "")


def test_testparm_failures_as_4_17(plugin_harness, tmp_path, listener):
    port = listener.getsockname()[1]
    h = plugin_harness(smbd, "samba", settings={"probe": "no"})
    h.runner.respond(["testparm"], returncode=1, stderr="Unknown parameter encountered\n")
    assert h.output("monitor") == (1, "ERROR: smb.conf cache create failed - testparm failed with:\n"
                                      "Unknown parameter encountered")
    h.runner.respond(["testparm"], returncode=service.TIMED_OUT)
    assert h.output("monitor") == (1, "ERROR: smb.conf cache create failed - testparm command timed out")
    # with a cache, a failing testparm only warns
    h.runner.respond(["testparm"], stdout=TESTPARM.format(pid=tmp_path, ports=port, share=tmp_path))
    assert h.output("monitor") == (0, "")
    h.runner.respond(["testparm"], returncode=1, stderr="broken\n")
    assert h.output("monitor") == (0, "")
    assert h.runner.commands("testparm")[-1] == ("testparm", "-v", "-s")


def test_smb_conf_setting_is_passed_to_testparm(plugin_harness, tmp_path, listener):
    h = harness(plugin_harness, tmp_path, listener.getsockname()[1], **{"smb conf": "/x/smb.conf"})
    h.run("monitor")
    assert h.runner.commands("testparm") == [("testparm", "-v", "-s", "/x/smb.conf")]


def test_startup_stops_starts_and_waits_for_the_port(plugin_harness, tmp_path, listener):
    port = listener.getsockname()[1]
    h = harness(plugin_harness, tmp_path, port, **{"start command": "smbd -D", "stop command": "pkill smbd",
                                                   "start wait": "2"})
    assert h.output("startup") == (0, "")
    assert h.runner.commands("/bin/sh") == [("/bin/sh", "-c", "pkill smbd")]
    assert ("nice", "/bin/sh", "-c", "smbd -D") in h.runner.calls
    listener.close()
    status, out = h.output("startup")
    assert status == 1 and out == f"ERROR: smbd started but samba not listening on TCP port {port} after 2 s"


def test_startup_failure_and_missing_program(plugin_harness, tmp_path, monkeypatch):
    h = plugin_harness(smbd, "samba", settings={"start command": "false"})
    h.runner.respond(["nice"], returncode=1, stderr="no such thing\n")
    assert h.output("startup") == (1, "Failed to start samba\nno such thing")
    monkeypatch.setattr(service, "missing_program", lambda p, pkg: f"ERROR: {p} is not installed (apt-get install {pkg})")
    h = plugin_harness(smbd, "samba2")
    assert h.output("startup") == (1, "ERROR: /usr/sbin/smbd is not installed (apt-get install samba)")


def test_probe_tells_a_hung_listener_from_smbd(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()  # accepts in the kernel, never answers: a stopped smbd
    try:
        assert "no answer" in probe.answers("127.0.0.1", s.getsockname()[1], timeout=0.5)
    finally:
        s.close()
    answer = threading.Event()

    def fake_smbd(srv):
        conn, _ = srv.accept()
        data = conn.recv(4096)
        assert data[4:8] == b"\xfeSMB" and int.from_bytes(data[:4], "big") == len(data) - 4
        conn.sendall(b"\0\0\0\x40\xfeSMB" + b"\0" * 60)
        answer.set()
        conn.close()

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    t = threading.Thread(target=fake_smbd, args=(srv,))
    t.start()
    assert probe.answers("127.0.0.1", srv.getsockname()[1], timeout=3) is None
    t.join()
    srv.close()


@pytest.mark.skipif(not os.path.exists("/usr/sbin/smbd"), reason="Debian's samba is not installed")
def test_probe_against_real_smbd_and_its_pid_file(plugin_harness, tmp_path):
    from ctdb_localcluster.samba import smb_conf

    class Standalone:  # smb_conf wants a cluster; a standalone smbd needs no ctdbd
        def address(self, pnn):
            return "127.0.0.1"

        def socket(self, pnn):
            return str(tmp_path / "none.socket")

    conf = smb_conf(tmp_path / "smbd", Standalone(), 0, tmp_path, port=44599)
    conf.write_text(conf.read_text().replace("clustering = yes", "clustering = no"))
    p = subprocess.Popen(["/usr/sbin/smbd", "-D", "-s", str(conf)])
    try:
        p.wait(30)
        h = plugin_harness(smbd, "samba", runner=service.SubprocessRunner(),
                           settings={"smb conf": str(conf), "testparm": "/usr/bin/testparm"})
        import time
        deadline = time.monotonic() + 30
        while service.check_tcp_ports("samba", [44599]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert h.output("monitor") == (0, "")
        pid = smbd.main_pid(h.plugin_ctx)
        assert pid is not None and "smbd" in open(f"/proc/{pid}/comm").read()
        os.kill(pid, 19)  # SIGSTOP: hung
        try:
            status, out = h.output("monitor")
            assert status == 1 and out.startswith("ERROR: smbd does not answer: no answer on TCP port 44599"), out
        finally:
            os.kill(pid, 18)
    finally:
        for pidfile in (tmp_path / "smbd" / "pid").glob("smbd*.pid"):
            pid = service.read_pidfile(pidfile)
            if pid:
                os.killpg(os.getpgid(pid), 9) if os.getpgid(pid) == pid else os.kill(pid, 9)


def test_netbios_startup_and_shutdown(plugin_harness):
    h = plugin_harness(netbios, "netbios", settings={"start command": "nmbd -D", "stop command": "kill nmbd"})
    assert h.output("startup") == (0, "")
    assert h.output("shutdown") == (0, "")
    assert h.runner.calls == [("/bin/sh", "-c", "kill nmbd"), ("nice", "/bin/sh", "-c", "nmbd -D"),
                              ("/bin/sh", "-c", "kill nmbd")]
    h.runner.respond(["nice"], returncode=1)
    assert h.output("startup") == (1, "Failed to start nmbd")


def test_smbconf_parse():
    conf = smbconf.parse(TESTPARM.format(pid="/p", ports="445, 139", share="/srv/s"))
    assert smbconf.smb_ports(conf) == [445, 139] and smbconf.pid_directory(conf) == "/p"
    assert smbconf.share_paths(conf) == ["/srv/s", "/home/%U"]
    assert smbconf.smb_ports({}) == [445, 139]
