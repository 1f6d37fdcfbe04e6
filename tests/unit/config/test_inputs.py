"""nodes, public_addresses, tunables, sysconfig, paths and load_config."""

import ipaddress
import json

import pytest

from ctdbcore.config.errors import ConfigError, ConfigErrors
from ctdbcore.config.model import config_to_dict, load_config
from ctdbcore.config.nodes import NodeEntry, parse_nodes_file
from ctdbcore.config.paths import default_paths
from ctdbcore.config.public_addresses import parse_public_addresses_file, parse_public_addresses_text
from ctdbcore.config.sysconfig import parse_sysconfig, parse_sysconfig_text
from ctdbcore.config.tunables import CHANGED_DEFAULTS, TUNABLE_TABLE, Tunables, parse_tunables_file


def errs(fn, *a, **kw):
    with pytest.raises(ConfigErrors) as info:
        fn(*a, **kw)
    return str(info.value).splitlines()


def test_error_str_forms():
    assert str(ConfigError("f", 3, "bad")) == "f:3: bad"
    assert str(ConfigError("f", None, "bad")) == "f: bad"
    assert str(ConfigErrors([ConfigError("a", 1, "x"), ConfigError("b", 2, "y")])) == "a:1: x\nb:2: y"


def test_paths():
    p = default_paths({})
    assert (p.etc_dir, p.run_dir, p.var_dir, p.socket, p.helper_dir) == (
        "/etc/ctdb", "/run/ctdb", "/var/lib/ctdb", "/run/ctdb/ctdbd.socket", "/usr/libexec/ctdb")
    p = default_paths({"CTDB_BASE": "/b", "CTDB_TEST_MODE": "yes", "CTDB_SOCKET": "/s"})
    assert (p.run_dir, p.var_dir, p.socket) == ("/b/run", "/b/var", "/s")
    assert default_paths({"CTDB_BASE": "/b"}).run_dir == "/run/ctdb"


def test_nodes_deleted_rule(write):
    nodes = parse_nodes_file(write("nodes", "# gone\n10.0.0.2\n\n\t#10.0.0.3\n10.0.0.4\n\n\n"))
    assert nodes == (
        NodeEntry(0, None, True),
        NodeEntry(1, ipaddress.ip_address("10.0.0.2"), False),
        NodeEntry(2, None, True),
        NodeEntry(3, ipaddress.ip_address("10.0.0.4"), False),
    )


def test_nodes_v6_port_and_garbage(write):
    path = write("nodes", "fd00::1\n[fd00::2]:4379\n10.0.0.1 10.0.0.2\n")
    lines = errs(parse_nodes_file, path)
    assert lines[0].startswith(f"{path}:2: explicit port in '[fd00::2]:4379' is not supported")
    assert lines[1] == f"{path}:3: invalid node address '10.0.0.1 10.0.0.2'"


def test_nodes_missing_file(tmp_path):
    assert "nodes file not found" in errs(parse_nodes_file, str(tmp_path / "nodes"))[0]


def test_public_addresses_good(write):
    pa = parse_public_addresses_file(write("pa", "  # c\n\n10.1.1.1/24\teth0\nfd00::5/64 eth0,eth1\n\n"))
    assert [str(a) for a in pa] == ["10.1.1.1/24 eth0", "fd00::5/64 eth0,eth1"]
    assert pa[0].line == 3


@pytest.mark.parametrize("line, message", [
    ("10.1.1.1/33 eth0", "invalid netmask bits '33'"),
    ("10.1.1.1/x eth0", "invalid netmask bits 'x'"),
    ("10.1.1 eth0", "invalid public address '10.1.1'"),
    ("10.1.1.1 eth0", "missing netmask bits"),
    ("10.1.1.1/24", "missing interface for 10.1.1.1/24"),
    ("10.1.1.1/24 eth0,,eth1", "empty interface name"),
    ("10.1.1.1/24 eth0 extra", "unexpected text"),
    ("10.1.1.1/24 averyveryverylongifname", "invalid interface name"),
])
def test_public_addresses_bad(write, line, message):
    path = write("pa", f"# first\n{line}\n")
    (err,) = errs(parse_public_addresses_file, path)
    assert err.startswith(f"{path}:2: {message}")


def test_public_addresses_duplicate():
    assert errs(parse_public_addresses_text, "1.1.1.1/8 e\n1.1.1.1/16 f\n", "pa") == [
        "pa:2: duplicate public address 1.1.1.1 (already on line 1)"]


def test_tunable_table_matches_reference():
    assert len(TUNABLE_TABLE) == 62
    assert [t.name for t in TUNABLE_TABLE if t.obsolete] == [
        "MaxRedirectCount", "EventScriptUnhealthyOnTimeout", "DeterministicIPs", "LCP2PublicIPs",
        "ReclockPingPeriod", "DisableIPFailover", "VerifyRecoveryLock", "VacuumLimit", "RecoverPDBBySeqNum",
        "DeferredRebalanceOnNodeAdd", "NoIPHostOnAllDisabled", "Samba3AvoidDeadlocks", "TDBMutexEnabled"]
    up = Tunables.upstream()
    assert (up.KeepaliveInterval, up.KeepaliveLimit, up.ElectionTimeout, up.RerecoveryTimeout, up.MonitorInterval) == (
        5, 5, 3, 10, 15)
    ours = Tunables()
    assert {n: ours.get(n) for n in CHANGED_DEFAULTS} == {
        "KeepaliveInterval": 1, "KeepaliveLimit": 1, "ElectionTimeout": 1, "RerecoveryTimeout": 0, "MonitorInterval": 5}
    assert all(why for _, why in CHANGED_DEFAULTS.values())
    assert len(ours.to_list()) == 62 and ours.to_list()[17] == 100001  # DatabaseHashSize by idx


def test_tunables_get_set():
    t = Tunables()
    with pytest.raises(KeyError):
        t.get("nope")
    with pytest.raises(AttributeError):
        t.Nope
    assert t.set("tdbmutexenabled", 0) == 1 and t.get("TDBMutexEnabled") == 0  # stored, as 4.17
    assert t.set("monitorINTERVAL", 2**32 - 1) == 0 and t.MonitorInterval == 2**32 - 1
    assert t.set("MonitorInterval", -1) == -1


def test_tunables_file(write):
    assert parse_tunables_file(write("t", "\n# x\nEnableBans = 0\n")) == {"EnableBans": 0}
    path = write("t", "EnableBans=1\nEnableBans=4294967296\nEnableBans=1.5\n")
    assert [e.split(": ", 1)[0] for e in errs(parse_tunables_file, path)] == [f"{path}:2", f"{path}:3"]


def test_sysconfig_mapping(write):
    sc = parse_sysconfig(write("ctdb", """\
# seed paper
CTDB_RECOVERY_LOCK="/gpfs/.ctdb/lock"   # shared
CTDB_NODE_ADDRESS=10.0.0.1
CTDB_TRANSPORT=tcp
CTDB_DBDIR=/local/ctdb
CTDB_DBDIR_PERSISTENT='/local/ctdb/persistent'
CTDB_DBDIR_STATE=/local/ctdb/state
CTDB_LOGFILE=/var/log/log.ctdb
CTDB_DEBUGLEVEL=ERR
CTDB_CAPABILITY_RECMASTER=no
CTDB_CAPABILITY_LMASTER=no
CTDB_START_AS_DISABLED=yes
CTDB_START_AS_STOPPED=no
CTDB_NOSETSCHED=yes
CTDB_SCRIPT_LOG_LEVEL=NOTICE
CTDB_DEBUG_HUNG_SCRIPT=/etc/ctdb/debug-hung-script.sh
CTDB_DEBUG_LOCKS=/etc/ctdb/debug_locks.sh
CTDB_MANAGES_WINBIND=yes
CTDB_MANAGES_VSFTPD=yes
CTDB_MANAGED_SERVICES="httpd nfs"
CTDB_SET_RecoveryBanPeriod=60
CTDB_PIDFILE=/var/run/ctdbd.pid
CTDB_SAMBA_CHECK_PORTS=445
"""))
    o = sc.overrides
    assert str(o["cluster"]["node address"]) == "10.0.0.1"
    assert o["cluster"]["leader capability"] is False and o["legacy"]["lmaster capability"] is False
    assert o["database"] == {
        "volatile database directory": "/local/ctdb", "persistent database directory": "/local/ctdb/persistent",
        "state database directory": "/local/ctdb/state", "lock debug script": "/etc/ctdb/debug_locks.sh"}
    assert o["logging"] == {"location": "file:/var/log/log.ctdb", "log level": "ERROR"}
    assert o["legacy"]["realtime scheduling"] is False and o["legacy"]["start as disabled"] is True
    assert o["legacy"]["start as stopped"] is False and o["legacy"]["script log level"] == "NOTICE"
    assert o["event"]["debug script"] == "/etc/ctdb/debug-hung-script.sh"
    assert sc.managed_services == {"winbind", "vsftpd", "httpd", "nfs"}
    assert sc.tunables == {"RecoveryBanPeriod": 60}
    assert [w.split(": ", 1)[0].rsplit(":", 1)[1] for w in sc.warnings] == ["22", "23"]


def test_sysconfig_logging_precedence():
    sc = parse_sysconfig_text("CTDB_LOGFILE=/a\nCTDB_SYSLOG=yes\n")
    assert sc.overrides["logging"]["location"] == "syslog"
    sc = parse_sysconfig_text("CTDB_LOGGING=syslog:udp\nCTDB_SYSLOG=yes\n")
    assert sc.overrides["logging"]["location"] == "syslog:udp"


def test_sysconfig_errors():
    lines = errs(parse_sysconfig_text, 'CTDB_START_AS_STOPPED=sure\nCTDB_DBDIR=tmpfs\nX="unclosed\n'
                 "CTDB_NODE_ADDRESS=nothost\nCTDB_SET_EnableBans=lots\nCTDB_DEBUGLEVEL=LOUD\n", "/etc/sysconfig/ctdb")
    assert [line.split(": ", 1)[0] for line in lines] == [f"/etc/sysconfig/ctdb:{i}" for i in range(1, 7)]
    assert "tmpfs" in lines[1]


def _cluster(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return default_paths({"CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes"})


def test_load_config_with_sysconfig(tmp_path):
    paths = _cluster(tmp_path, nodes="10.0.0.1\n10.0.0.2\n", **{"ctdb.tunables": "EnableBans=0\nMonitorInterval=9\n"})
    (tmp_path / "pa").write_text("192.168.0.10/24\n")
    (tmp_path / "sc").write_text(f"CTDB_PUBLIC_ADDRESSES={tmp_path}/pa\nCTDB_PUBLIC_INTERFACE=eth0\n"
                                 "CTDB_RECOVERY_LOCK=/x/lock\nCTDB_MANAGES_SAMBA=yes\nCTDB_SET_MonitorInterval=20\n")
    cfg = load_config(paths, sysconfig_path=str(tmp_path / "sc"))
    assert cfg.ctdb_conf.cluster.cluster_lock == "/x/lock"
    assert cfg.public_addresses[0].ifaces == ("eth0",)
    assert cfg.managed_services == {"samba"}
    assert cfg.tunables.EnableBans == 0 and cfg.tunables.MonitorInterval == 20  # sysconfig applied last
    assert cfg.sources[0] == str(tmp_path / "sc")
    d = config_to_dict(cfg)
    json.dumps(d)
    assert d["managed_services"] == ["samba"] and d["public_addresses"][0]["ip"] == "192.168.0.10"


def test_load_config_node_address_must_be_listed(tmp_path):
    paths = _cluster(tmp_path, nodes="10.0.0.1\n", **{"ctdb.conf": "[cluster]\nnode address = 10.0.0.9\n"})
    assert errs(load_config, paths) == [
        f"{tmp_path}/ctdb.conf: node address 10.0.0.9 is not in the nodes file {tmp_path}/nodes"]


def test_load_config_explicit_public_addresses_must_exist(tmp_path):
    paths = _cluster(tmp_path, nodes="10.0.0.1\n", sc=f"CTDB_PUBLIC_ADDRESSES={tmp_path}/missing\n")
    (line,) = errs(load_config, paths, sysconfig_path=str(tmp_path / "sc"))
    assert line.startswith(f"{tmp_path}/missing: cannot read")
