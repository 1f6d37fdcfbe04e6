"""Every configuration input: good files parse, bad ones name file and line."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from ctdbcore.config.ctdbconf import dump_ctdb_conf, parse_ctdb_conf, parse_ctdb_conf_text
from ctdbcore.config.errors import ConfigErrors
from ctdbcore.config.model import config_to_dict, load_config
from ctdbcore.config.nodes import parse_nodes_text
from ctdbcore.config.paths import default_paths
from ctdbcore.config.public_addresses import parse_public_addresses_text
from ctdbcore.config.sysconfig import parse_sysconfig_text
from ctdbcore.config.tunables import TABLE, Tunables, parse_tunables_text


def errors_of(fn, *args, **kw) -> list[str]:
    with pytest.raises(ConfigErrors) as ei:
        fn(*args, **kw)
    return [str(e) for e in ei.value.errors]


# -- ctdb.conf ------------------------------------------------------------------------

GOOD_CONF = textwrap.dedent("""\
    # Debian's shipped file, plus a few changes
    [logging]
        location = syslog
        log level = INFO
    [cluster]
        cluster lock = !/usr/libexec/ctdb/ctdb_mutex_fcntl_helper /clusterfs/.ctdb/lock
        leader timeout = 7
        leader capability = no
    [legacy]
        start as disabled = yes
    """)


def test_good_ctdb_conf() -> None:
    c = parse_ctdb_conf_text(GOOD_CONF, "ctdb.conf")
    assert c.logging.location == "syslog" and c.logging.log_level == "INFO"
    assert c.cluster.cluster_lock.startswith("!/usr/libexec/ctdb/ctdb_mutex_fcntl_helper")
    assert c.cluster.leader_timeout == 7 and c.cluster.leader_capability is False
    assert c.legacy.start_as_disabled is True
    assert c.cluster.transport == "tcp" and c.cluster.node_address is None


def test_defaults_differ_from_417_only_in_leader_timeout() -> None:
    c = parse_ctdb_conf_text("", "ctdb.conf")
    assert c.cluster.leader_timeout == 2


def test_bad_ctdb_conf_reports_every_error_with_its_line() -> None:
    text = textwrap.dedent("""\
        [cluster]
            leader timeout = soon
            cluster lockk = /x
        [nosuch]
            a = b
        [logging]
            log level = LOUD
            location = /var/log/x
        [legacy]
            start as stopped = perhaps
        just some words
        """)
    errs = errors_of(parse_ctdb_conf_text, text, "/etc/ctdb/ctdb.conf")
    assert errs[0].startswith("/etc/ctdb/ctdb.conf:2: invalid value for [cluster] leader timeout = soon:")
    assert errs[1] == "/etc/ctdb/ctdb.conf:3: unknown key 'cluster lockk' in section [cluster]"
    assert errs[2].startswith("/etc/ctdb/ctdb.conf:4: unknown section [nosuch] (no built-in section and no installed plugin")
    assert errs[3].startswith("/etc/ctdb/ctdb.conf:7: invalid value for [logging] log level = LOUD:")
    assert errs[4].startswith("/etc/ctdb/ctdb.conf:8: invalid value for [logging] location = /var/log/x:")
    assert errs[5].startswith("/etc/ctdb/ctdb.conf:10: invalid value for [legacy] start as stopped = perhaps:")
    assert errs[6].startswith("/etc/ctdb/ctdb.conf:11: syntax error: expected '[section]' or 'key = value'")
    assert len(errs) == 7


def test_option_outside_section() -> None:
    assert errors_of(parse_ctdb_conf_text, "log level = INFO\n", "f") == ["f:1: key 'log level' outside any section"]


def test_recovery_lock_is_a_deprecated_alias_and_cluster_lock_wins() -> None:
    c = parse_ctdb_conf_text("[cluster]\ncluster lock = /a\nrecovery lock = /b\n", "f")
    assert c.cluster.cluster_lock == "/a"
    assert any("deprecated" in w for w in c.warnings)
    assert parse_ctdb_conf_text("[cluster]\nrecovery lock = /b\n", "f").cluster.cluster_lock == "/b"


def test_plugin_owned_section() -> None:
    import attrs

    @attrs.define
    class SambaSection:
        check_ports: str = "445"
        skip_share_check: bool = False

    c = parse_ctdb_conf_text("[samba]\ncheck ports = 445 139\nskip share check = true\n", "f",
                             extra_sections={"samba": SambaSection})
    assert c.extra["samba"] == SambaSection("445 139", True)
    errs = errors_of(parse_ctdb_conf_text, "[samba]\n\ncheck portz = 1\n", "f", extra_sections={"samba": SambaSection})
    assert errs == ["f:3: unknown key 'check portz' in section [samba]"]


def test_dump_then_parse_round_trip(tmp_path) -> None:
    c = parse_ctdb_conf_text(GOOD_CONF, "ctdb.conf")
    p = tmp_path / "ctdb.conf"
    p.write_text(dump_ctdb_conf(c))
    again = parse_ctdb_conf(str(p))
    assert again.cluster == c.cluster and again.logging == c.logging and again.legacy == c.legacy


# -- nodes ------------------------------------------------------------------------------


def test_nodes_deleted_lines_keep_their_pnn_and_blank_lines_take_none() -> None:
    nodes = parse_nodes_text("10.0.0.1\n\n#10.0.0.2\n  10.0.0.3  \nfd00::4\n\n\n", "nodes")
    assert [(n.pnn, str(n.address) if n.address else None, n.deleted) for n in nodes] == [
        (0, "10.0.0.1", False), (1, None, True), (2, "10.0.0.3", False), (3, "fd00::4", False)]


def test_bad_nodes_file() -> None:
    errs = errors_of(parse_nodes_text, "10.0.0.1\nfoo\n10.0.0.1\n10.0.0.5:4379\n", "/etc/ctdb/nodes")
    assert errs == [
        "/etc/ctdb/nodes:2: invalid node address 'foo'",
        "/etc/ctdb/nodes:3: duplicate node address 10.0.0.1 (already on line 1)",
        "/etc/ctdb/nodes:4: explicit port in '10.0.0.5:4379' is not supported: 4.17 nodes files take a bare "
        "address and the port is always 4379 (or ctdb/tcp in /etc/services); write '10.0.0.5'",
    ]
    assert errors_of(parse_nodes_text, "\n#gone\n", "n") == ["n: no nodes defined"]


# -- public_addresses -----------------------------------------------------------------


def test_public_addresses() -> None:
    pa = parse_public_addresses_text("10.0.0.31/24 eth1,eth2\n# comment\nfd00::31/64 eth1\n10.0.0.32/24\n", "pa",
                                     default_iface="eth9")
    assert pa[0].ip == ipaddress.ip_address("10.0.0.31") and pa[0].prefixlen == 24 and pa[0].ifaces == ("eth1", "eth2")
    assert pa[1].prefixlen == 64 and pa[2].ifaces == ("eth9",)
    errs = errors_of(parse_public_addresses_text, "10.0.0.31/24 eth1\n10.0.0.x/24 eth1\n10.0.0.31/24 eth1\n10.0.0.40 eth1\n10.0.0.41/24\n", "pa")
    assert [e.split(":")[1] for e in errs] == ["2", "3", "4", "5"]


# -- tunables --------------------------------------------------------------------------


def test_tunables_table_and_status_codes() -> None:
    assert len(TABLE) == 62 and sorted(t.idx for t in TABLE) == list(range(62))
    t = Tunables()
    assert t.get("keepaliveinterval") == 1 and t.KeepaliveLimit == 1
    assert t.set("MonitorInterval", 30) == 0 and t.get("MonitorInterval") == 30
    assert t.set("VerifyRecoveryLock", 1) == 1  # obsolete
    assert t.set("NoSuchThing", 1) == -1
    assert t.set("MonitorInterval", 2**32) == -1
    names = [n for n, _ in t.listvars()]
    assert names[0] == "SeqnumInterval" and "VerifyRecoveryLock" not in names and len(names) == 49
    assert t.to_list()[60] == 2  # IPAllocAlgorithm by wire index


def test_tunables_file() -> None:
    assert parse_tunables_text("MonitorInterval=20\n# c\n keepalivelimit = 3\n", "t") == {"MonitorInterval": 20, "KeepaliveLimit": 3}
    errs = errors_of(parse_tunables_text, "[x]\nNope=1\nVerifyRecoveryLock=1\nMonitorInterval=soon\nwhat\n", "/etc/ctdb/ctdb.tunables")
    assert [e.split(": ", 1)[0] for e in errs] == [f"/etc/ctdb/ctdb.tunables:{i}" for i in range(1, 6)]


# -- sysconfig --------------------------------------------------------------------------


def test_seed_sysconfig_maps_to_417_options() -> None:
    sc = parse_sysconfig_text(textwrap.dedent("""\
        CTDB_RECOVERY_LOCK=/shared/.ctdb/lock
        CTDB_NODES=/etc/ctdb/nodes
        CTDB_PUBLIC_ADDRESSES="/etc/ctdb/public_addresses"
        CTDB_PUBLIC_INTERFACE=eth0
        CTDB_MANAGES_SAMBA=yes
        CTDB_MANAGES_NFS=no
        export CTDB_SET_MonitorInterval=20
        CTDB_DEBUGLEVEL=3
        CTDB_SOCKET=/tmp/x
        """), "/etc/sysconfig/ctdb")
    assert sc.overrides["cluster"]["cluster lock"] == "/shared/.ctdb/lock"
    assert sc.public_addresses_path == "/etc/ctdb/public_addresses" and sc.public_interface == "eth0"
    assert sc.managed_services == {"samba"} and sc.tunables == {"MonitorInterval": 20}
    assert sc.overrides["logging"]["log level"] == "3"  # numbers are kept as written
    assert any("CTDB_SOCKET" in w for w in sc.warnings)
    errs = errors_of(parse_sysconfig_text, "CTDB_MANAGES_SAMBA=maybe\nthis is not shell\nCTDB_SET_Nope=1\n", "sc")
    assert [e.split(": ", 1)[0] for e in errs] == ["sc:1", "sc:2", "sc:3"]


# -- the whole set ------------------------------------------------------------------------


def test_load_config_collects_errors_from_all_files(tmp_path) -> None:
    (tmp_path / "ctdb.conf").write_text("[cluster]\nleader timeout = x\n")
    (tmp_path / "nodes").write_text("10.0.0.1\nbad\n")
    (tmp_path / "ctdb.tunables").write_text("Nope=1\n")
    paths = default_paths({"CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes"})
    errs = errors_of(load_config, paths)
    where = sorted(e.split(": ", 1)[0] for e in errs)
    assert where == sorted([f"{tmp_path}/ctdb.conf:2", f"{tmp_path}/nodes:2", f"{tmp_path}/ctdb.tunables:1"])


def test_load_config_missing_nodes_file_is_a_clear_error(tmp_path) -> None:
    paths = default_paths({"CTDB_BASE": str(tmp_path)})
    assert errors_of(load_config, paths) == [f"{tmp_path}/nodes: nodes file not found (every node needs the same list of node addresses)"]


def test_load_config_good_and_json(tmp_path) -> None:
    (tmp_path / "nodes").write_text("127.0.0.1\n127.0.0.2\n")
    (tmp_path / "public_addresses").write_text("10.0.0.31/24 eth1\n")
    paths = default_paths({"CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes"})
    cfg = load_config(paths)
    assert cfg.ctdb_conf.database.volatile_dir == f"{tmp_path}/var/volatile"
    d = config_to_dict(cfg)
    assert d["nodes"][1]["address"] == "127.0.0.2" and d["tunables"]["KeepaliveInterval"] == 1
    assert paths.socket == f"{tmp_path}/run/ctdbd.socket"
