import attrs
import pytest

from ctdbcore.config.ctdbconf import (
    ClusterConfig,
    CtdbConf,
    DatabaseConfig,
    dump_ctdb_conf,
    parse_ctdb_conf,
    parse_ctdb_conf_text,
)
from ctdbcore.config.errors import ConfigErrors

GOOD = """\
# Debian-like
[logging]
    location = syslog:nonblocking
    log   level = info

[cluster]
\ttransport = tcp
node address = fd00::1
cluster lock = !/usr/libexec/ctdb/ctdb_mutex_fcntl_helper /clusterfs/.ctdb/lock 5 10
leader timeout = 7
leader capability = no

[database]
volatile database directory = /srv/vol
tdb mutexes = off
lock debug script = /etc/ctdb/debug_locks.sh
; also a comment
[event]
debug script = /etc/ctdb/debug-hung-script.sh
[failover]
disabled = 1
[legacy]
realtime scheduling = false
start as stopped = yes
script log level = 4
"""


def errors_of(text, **kw):
    with pytest.raises(ConfigErrors) as info:
        parse_ctdb_conf_text(text, "/etc/ctdb/ctdb.conf", **kw)
    return str(info.value).splitlines()


def test_defaults():
    conf = parse_ctdb_conf_text("")
    assert conf == CtdbConf()
    assert conf.logging.location == "file:/var/log/ctdb/log.ctdb"
    assert conf.logging.log_level == "NOTICE"
    assert conf.cluster == ClusterConfig("tcp", None, None, 2, True)
    assert conf.database.volatile_dir == "/var/lib/ctdb/volatile"
    assert conf.legacy.script_log_level == "ERROR"


def test_leader_timeout_default_is_ours_and_documented():
    assert ClusterConfig().leader_timeout == 2
    assert "5" in ClusterConfig.__doc__ and "leader timeout" in ClusterConfig.__doc__


def test_database_defaults_follow_var_dir():
    conf = parse_ctdb_conf_text("", var_dir="/tmp/x/var")
    assert conf.database == DatabaseConfig("/tmp/x/var/volatile", "/tmp/x/var/persistent", "/tmp/x/var/state")


def test_good_file(write):
    conf = parse_ctdb_conf(write("ctdb.conf", GOOD))
    assert conf.logging.location == "syslog:nonblocking"
    assert conf.logging.log_level == "INFO"
    assert str(conf.cluster.node_address) == "fd00::1"
    assert conf.cluster.cluster_lock.startswith("!/usr/libexec/ctdb/ctdb_mutex_fcntl_helper ")
    assert conf.cluster.leader_timeout == 7
    assert conf.cluster.leader_capability is False
    assert conf.database.volatile_dir == "/srv/vol"
    assert conf.database.persistent_dir == "/var/lib/ctdb/persistent"
    assert conf.database.tdb_mutexes is False
    assert conf.event.debug_script == "/etc/ctdb/debug-hung-script.sh"
    assert conf.failover.disabled is True
    assert conf.legacy.realtime_scheduling is False
    assert conf.legacy.start_as_stopped is True
    assert conf.legacy.script_log_level == "4"


@pytest.mark.parametrize("loc", ["file:/tmp/log", "syslog", "syslog:udp", "syslog:udp-rfc5424", "stderr"])
def test_locations(loc):
    assert parse_ctdb_conf_text(f"[logging]\nlocation = {loc}\n").logging.location == loc


def test_recovery_lock_alias_warns():
    conf = parse_ctdb_conf_text("[cluster]\nrecovery lock = /a\n", "c.conf")
    assert conf.cluster.cluster_lock == "/a"
    assert conf.warnings == ("c.conf:2: [cluster] recovery lock is deprecated, use cluster lock",)


def test_cluster_lock_wins_over_recovery_lock():
    conf = parse_ctdb_conf_text("[cluster]\ncluster lock = /b\nrecovery lock = /a\n")
    assert conf.cluster.cluster_lock == "/b"
    assert conf.warnings


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[bogus]\nx = 1\n", "/etc/ctdb/ctdb.conf:1: unknown section [bogus]"),
        ("[cluster]\n\nnode adress = 1.2.3.4\n", "/etc/ctdb/ctdb.conf:3: unknown key 'node adress' in section [cluster]"),
        ("[logging]\nlog_level = INFO\n", "/etc/ctdb/ctdb.conf:2: unknown key 'log_level' in section [logging]"),
        ("[failover]\ndisabled = maybe\n", "/etc/ctdb/ctdb.conf:2: invalid value for [failover] disabled = maybe: invalid boolean"),
        ("[cluster]\nleader timeout = 2.5\n", "/etc/ctdb/ctdb.conf:2: invalid value for [cluster] leader timeout = 2.5: invalid integer"),
        ("[cluster]\nleader timeout = 0\n", "/etc/ctdb/ctdb.conf:2: invalid value for [cluster] leader timeout = 0"),
        ("[logging]\nlog level = LOUD\n", "/etc/ctdb/ctdb.conf:2: invalid value for [logging] log level = LOUD: invalid log level"),
        ("[logging]\nlog level = 11\n", "/etc/ctdb/ctdb.conf:2: invalid value for [logging] log level = 11"),
        ("[logging]\nlocation = syslog:tcp\n", "/etc/ctdb/ctdb.conf:2: invalid value for [logging] location = syslog:tcp"),
        ("[logging]\nlocation = /var/log/x\n", "/etc/ctdb/ctdb.conf:2: invalid value for [logging] location"),
        ("[cluster]\nnode address = 10.0.0.300\n", "/etc/ctdb/ctdb.conf:2: invalid value for [cluster] node address"),
        ("[database]\nstate database directory = relative\n", "/etc/ctdb/ctdb.conf:2: invalid value for [database] state database directory"),
        ("# c\nlog level = INFO\n", "/etc/ctdb/ctdb.conf:2: key 'log level' outside any section"),
        ("[logging]\njust words\n", "/etc/ctdb/ctdb.conf:2: syntax error"),
    ],
)
def test_bad(text, expected):
    lines = errors_of(text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_all_errors_collected_in_line_order():
    lines = errors_of("[cluster]\nleader timeout = x\n[nope]\n[legacy]\nstart as stopped = perhaps\nfoo = 1\n")
    assert [line.split(":")[1] for line in lines] == ["2", "3", "5", "6"]


@attrs.define
class NfsSection:
    grace_period: int = 90
    enabled: bool = False
    server: str | None = None


@attrs.define
class NeedsKey:
    endpoint: str


def test_extra_section():
    conf = parse_ctdb_conf_text("[nfs]\ngrace period = 30\nenabled = yes\n", extra_sections={"nfs": NfsSection})
    assert conf.extra["nfs"] == NfsSection(30, True, None)


def test_extra_section_absent_gives_defaults():
    conf = parse_ctdb_conf_text("", extra_sections={"nfs": NfsSection})
    assert conf.extra["nfs"] == NfsSection()


def test_extra_section_errors_have_lines():
    lines = errors_of(
        "[nfs]\n\ngrace period = soon\nenabeld = yes\n", extra_sections={"nfs": NfsSection}
    )
    assert lines[0].startswith("/etc/ctdb/ctdb.conf:3: invalid value for [nfs] grace period = soon")
    assert lines[1] == "/etc/ctdb/ctdb.conf:4: unknown key 'enabeld' in section [nfs]"


def test_extra_section_missing_required_key():
    lines = errors_of("[etcd]\n", extra_sections={"etcd": NeedsKey})
    assert lines == ["/etc/ctdb/ctdb.conf:1: [etcd] missing required key 'endpoint'"]


def test_extra_section_cannot_shadow_builtin():
    assert "clashes" in errors_of("", extra_sections={"cluster": NfsSection})[0]


def test_dump_format():
    text = dump_ctdb_conf(parse_ctdb_conf_text("[cluster]\ncluster lock = /x\n"))
    lines = text.splitlines()
    assert lines[0] == "[logging]"
    assert "\t# location = file:/var/log/ctdb/log.ctdb" in lines
    assert "\tcluster lock = /x" in lines
    assert "\t# leader capability = true" in lines
    assert "\t# volatile database directory = /var/lib/ctdb/volatile" in lines


def test_dump_parse_round_trip(write):
    conf = parse_ctdb_conf(write("ctdb.conf", GOOD))
    assert parse_ctdb_conf_text(dump_ctdb_conf(conf)) == conf


def test_dump_round_trip_with_extra_and_var_dir():
    conf = parse_ctdb_conf_text(
        "[nfs]\nserver = a\n[database]\ntdb mutexes = no\n", var_dir="/v", extra_sections={"nfs": NfsSection}
    )
    text = dump_ctdb_conf(conf, var_dir="/v")
    assert "\tserver = a" in text and "\t# grace period = 90" in text
    assert parse_ctdb_conf_text(text, var_dir="/v", extra_sections={"nfs": NfsSection}) == conf


def test_missing_file(tmp_path):
    with pytest.raises(ConfigErrors) as info:
        parse_ctdb_conf(str(tmp_path / "none.conf"))
    assert str(info.value).startswith(f"{tmp_path}/none.conf: cannot read")
