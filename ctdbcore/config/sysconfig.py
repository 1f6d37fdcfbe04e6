"""The seed paper's `/etc/sysconfig/ctdb` (shell `KEY=value`), mapped onto ctdb.conf.

4.17 dropped this file (doc/examples/config_migrate.sh shows where each variable
went); administrators of older clusters still have one, so we read it as an overlay.
"""

from __future__ import annotations

import re
import shlex

import attrs

from ctdbcore.config.ctdbconf import parse_bool, parse_log_level
from ctdbcore.config.errors import Collector, ConfigError, ConfigErrors
from ctdbcore.config.tunables import BY_NAME

SERVICES = ("samba", "winbind", "nfs", "vsftpd", "httpd", "iscsi")
# variable -> (section, option, kind)
CONF_VARS = {
    "CTDB_RECOVERY_LOCK": ("cluster", "cluster_lock", "str"),
    "CTDB_NODE_ADDRESS": ("cluster", "node_address", "str"),
    "CTDB_TRANSPORT": ("cluster", "transport", "str"),
    "CTDB_DBDIR": ("database", "volatile_database_directory", "str"),
    "CTDB_DBDIR_PERSISTENT": ("database", "persistent_database_directory", "str"),
    "CTDB_DBDIR_STATE": ("database", "state_database_directory", "str"),
    "CTDB_LOGFILE": ("logging", "location", "file"),
    "CTDB_LOGGING": ("logging", "location", "str"),
    "CTDB_DEBUGLEVEL": ("logging", "log_level", "level"),
    "CTDB_CAPABILITY_RECMASTER": ("cluster", "leader_capability", "bool"),
    "CTDB_CAPABILITY_LMASTER": ("legacy", "lmaster_capability", "bool"),
    "CTDB_START_AS_DISABLED": ("legacy", "start_as_disabled", "bool"),
    "CTDB_START_AS_STOPPED": ("legacy", "start_as_stopped", "bool"),
    "CTDB_NOSETSCHED": ("legacy", "realtime_scheduling", "notbool"),
    "CTDB_SCRIPT_LOG_LEVEL": ("legacy", "script_log_level", "level"),
    "CTDB_DEBUG_HUNG_SCRIPT": ("event", "debug_script", "str"),
    "CTDB_DEBUG_LOCKS": ("database", "lock_debug_script", "str"),
}
REMOVED = {"CTDB_BASE", "CTDB_PIDFILE", "CTDB_SOCKET", "CTDB_EVENT_SCRIPT_DIR", "CTDB_NOTIFY_SCRIPT",
           "CTDB_MAX_PERSISTENT_CHECK_ERRORS", "CTDB_SHUTDOWN_TIMEOUT", "CTDB_MONITOR_SWAP_USAGE", "CTDB_SYSLOG"}
_ASSIGN = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@attrs.define
class Sysconfig:
    conf: dict[tuple[str, str], object] = attrs.field(factory=dict)
    nodes_path: str | None = None
    public_addresses_path: str | None = None
    public_interface: str | None = None
    managed_services: set[str] = attrs.field(factory=set)
    tunables: dict[str, int] = attrs.field(factory=dict)
    script_options: dict[str, str] = attrs.field(factory=dict)
    warnings: list[str] = attrs.field(factory=list)


def parse_sysconfig_text(text: str, path: str | None = None) -> Sysconfig:
    errs = Collector(path)
    sc = Sysconfig()
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGN.match(line)
        if not m:
            errs.add(no, f"expected VARIABLE=value, got {line!r}")
            continue
        var, rhs = m.groups()
        try:
            words = shlex.split(rhs, comments=True)
        except ValueError as e:
            errs.add(no, f"{var}: {e}")
            continue
        value = " ".join(words)
        try:
            if var in CONF_VARS:
                section, opt, kind = CONF_VARS[var]
                if kind == "bool":
                    v: object = parse_bool(value)
                elif kind == "notbool":
                    v = not parse_bool(value)
                elif kind == "level":
                    v = parse_log_level(value)
                elif kind == "file":
                    v = f"file:{value}"
                else:
                    v = value
                if var == "CTDB_LOGGING" and value.startswith("syslog") is False and not value.startswith("file:"):
                    raise ValueError(f"{value!r} is not a log location")
                sc.conf[(section, opt)] = v
            elif var == "CTDB_NODES":
                sc.nodes_path = value
            elif var == "CTDB_PUBLIC_ADDRESSES":
                sc.public_addresses_path = value
            elif var == "CTDB_PUBLIC_INTERFACE":
                sc.public_interface = value
            elif var.startswith("CTDB_MANAGES_"):
                svc = var[len("CTDB_MANAGES_"):].lower()
                if svc not in SERVICES:
                    sc.warnings.append(f"{path}:{no}: unknown service in {var}")
                elif parse_bool(value):
                    sc.managed_services.add(svc)
            elif var == "CTDB_MANAGED_SERVICES":
                sc.managed_services.update(w.lower() for w in words)
            elif var.startswith("CTDB_SET_"):
                name = var[len("CTDB_SET_"):]
                t = BY_NAME.get(name.lower())
                if t is None:
                    raise ValueError(f"unknown tunable {name!r}")
                sc.tunables[t.name] = int(value, 0)
            elif var in REMOVED:
                sc.warnings.append(f"{path}:{no}: {var} is no longer used (removed in CTDB 4.9+)")
            elif var.startswith("CTDB_"):
                sc.script_options[var] = value  # a script option, e.g. CTDB_SAMBA_SKIP_SHARE_CHECK
        except ValueError as e:
            errs.add(no, f"{var}: {e}")
    errs.raise_if_any()
    return sc


def parse_sysconfig(path: str) -> Sysconfig:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigErrors([ConfigError(path, None, f"cannot read: {e.strerror}")]) from None
    return parse_sysconfig_text(text, path)
