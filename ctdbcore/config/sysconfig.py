"""The 2009-era ``/etc/sysconfig/ctdb`` the seed paper configures ctdb with.

4.17 no longer reads it (reference §7.2); we translate each variable to its 4.17
home so old setups start unchanged: ctdb.conf settings, the nodes and
public_addresses paths, the default public interface, the managed services
(4.17: enabled event scripts) and ``CTDB_SET_<Tunable>``. Values are checked here,
so a bad one is reported at its line in this file, not later in ctdb.conf terms.

The file is shell, but only ``[export] KEY=value`` assignments (quotes and
trailing ``# comments`` allowed) are understood; no expansion is done.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import attrs

from ctdbcore.config.convert import parse_bool, parse_int
from ctdbcore.config.ctdbconf import parse_field_value
from ctdbcore.config.errors import ConfigErrors, ErrorCollector
from ctdbcore.config.shellvars import read_assignments
from ctdbcore.config.tunables import U32_MAX, lookup

# Variable -> (section, ctdb.conf key, transform of the value).
_direct = lambda v: v  # noqa: E731
_negate = lambda v: "false" if parse_bool(v) else "true"  # noqa: E731
_yesno = lambda v: "true" if parse_bool(v) else "false"  # noqa: E731


def _old_log_level(value: str) -> str:
    # Old configs used syslog-ish names as well: ERR, WARN, DEBUG…
    upper = value.strip().upper()
    return {"ERR": "ERROR", "WARN": "WARNING"}.get(upper, value)


def _dbdir(value: str) -> str:
    if value.strip() == "tmpfs":
        raise ValueError("CTDB_DBDIR=tmpfs is not supported (4.17 removed it); mount a tmpfs and give its path")
    return value


CONF_VARIABLES: dict[str, tuple[str, str, Any]] = {
    "CTDB_RECOVERY_LOCK": ("cluster", "cluster lock", _direct),
    "CTDB_NODE_ADDRESS": ("cluster", "node address", _direct),
    "CTDB_TRANSPORT": ("cluster", "transport", _direct),
    "CTDB_CAPABILITY_RECMASTER": ("cluster", "leader capability", _yesno),
    "CTDB_DBDIR": ("database", "volatile database directory", _dbdir),
    "CTDB_DBDIR_PERSISTENT": ("database", "persistent database directory", _direct),
    "CTDB_DBDIR_STATE": ("database", "state database directory", _direct),
    "CTDB_DEBUG_LOCKS": ("database", "lock debug script", _direct),
    "CTDB_DEBUG_HUNG_SCRIPT": ("event", "debug script", _direct),
    "CTDB_DEBUGLEVEL": ("logging", "log level", _old_log_level),
    "CTDB_CAPABILITY_LMASTER": ("legacy", "lmaster capability", _yesno),
    "CTDB_START_AS_DISABLED": ("legacy", "start as disabled", _yesno),
    "CTDB_START_AS_STOPPED": ("legacy", "start as stopped", _yesno),
    "CTDB_NOSETSCHED": ("legacy", "realtime scheduling", _negate),
    "CTDB_SCRIPT_LOG_LEVEL": ("legacy", "script log level", _old_log_level),
}

#: CTDB_MANAGES_<X> -> service name (4.17: the event script to enable)
MANAGES_VARIABLES = {
    "CTDB_MANAGES_SAMBA": "samba",
    "CTDB_MANAGES_WINBIND": "winbind",
    "CTDB_MANAGES_NFS": "nfs",
    "CTDB_MANAGES_VSFTPD": "vsftpd",
    "CTDB_MANAGES_HTTPD": "httpd",
    "CTDB_MANAGES_ISCSI": "iscsi",
}

#: Service name -> the event plugins it stands for, where not the same name: old
#: ctdb's 50.samba also ran nmbd, which 4.17 split into 48.netbios.
MANAGED_PLUGINS: dict[str, tuple[str, ...]] = {
    "samba": ("samba", "netbios"),
    "nfs": ("nfs", "nfs_pre"),
}

#: Gone in 4.17 with nothing to translate to; reported and ignored.
REMOVED_VARIABLES = frozenset({
    "CTDB_BASE", "CTDB_PIDFILE", "CTDB_SOCKET", "CTDB_EVENT_SCRIPT_DIR", "CTDB_NOTIFY_SCRIPT",
    "CTDB_MAX_PERSISTENT_CHECK_ERRORS", "CTDB_SHUTDOWN_TIMEOUT", "CTDB_MONITOR_SWAP_USAGE",
})

_LOGGING_VARIABLES = ("CTDB_LOGGING", "CTDB_SYSLOG", "CTDB_LOGFILE")


@attrs.frozen
class Sysconfig:
    path: str | None = None
    #: ctdb.conf section -> {key: parsed value}, applied over ctdb.conf
    overrides: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    nodes_path: str | None = None
    public_addresses_path: str | None = None
    public_interface: str | None = None
    managed_services: frozenset[str] = frozenset()
    #: canonical tunable name -> value (CTDB_SET_<Tunable>)
    tunables: dict[str, int] = attrs.field(factory=dict)
    #: every assignment as written, for diagnostics
    variables: dict[str, str] = attrs.field(factory=dict)
    #: the line of every assignment (plugin settings are reported there)
    lines: dict[str, int] = attrs.field(factory=dict)
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)


def parse_sysconfig_text(text: str, path: str | None = "sysconfig", *, claimed: Collection[str] = ()) -> Sysconfig:
    """Parse the file's text; ``claimed`` are variables that plugin settings read."""
    errors = ErrorCollector(path)
    where = path or "sysconfig"
    warnings: list[str] = []
    assigns = read_assignments(text, errors)
    overrides: dict[str, dict[str, Any]] = {}
    services: set[str] = set()
    tunables: dict[str, int] = {}

    def set_conf(section: str, key: str, raw: str, lineno: int, var: str) -> None:
        try:
            overrides.setdefault(section, {})[key] = parse_field_value(section, key, raw)
        except ValueError as exc:
            errors.add(lineno, f"invalid {var}={raw!r}: {exc}")

    for var, (value, lineno) in assigns.items():
        if var in CONF_VARIABLES:
            section, key, transform = CONF_VARIABLES[var]
            if value == "":
                continue  # VAR= means unset, as the old init script treated it
            try:
                set_conf(section, key, transform(value), lineno, var)
            except ValueError as exc:
                errors.add(lineno, f"invalid {var}={value!r}: {exc}")
        elif var in MANAGES_VARIABLES:
            try:
                if value and parse_bool(value):
                    services.add(MANAGES_VARIABLES[var])
            except ValueError:
                errors.add(lineno, f"invalid {var}={value!r}: expected yes or no")
        elif var == "CTDB_MANAGED_SERVICES":
            services.update(value.replace(",", " ").split())
        elif var.startswith("CTDB_SET_"):
            name = var[len("CTDB_SET_"):]
            t = lookup(name)
            if t is None:
                errors.add(lineno, f"unknown tunable {name!r} in {var}")
                continue
            try:
                number = parse_int(value)
                if not 0 <= number <= U32_MAX:
                    raise ValueError
            except ValueError:
                errors.add(lineno, f"invalid {var}={value!r}: expected an integer 0-{U32_MAX}")
                continue
            if t.obsolete:
                # Old configs often set tunables that later became no-ops; 4.17
                # would refuse them in ctdb.tunables, but a seed config must still start.
                warnings.append(f"{where}:{lineno}: {var}: tunable {t.name} is obsolete, ignored")
                continue
            tunables[t.name] = number
        elif var in REMOVED_VARIABLES:
            warnings.append(f"{where}:{lineno}: {var} was removed in CTDB 4.17 and is ignored")
        elif var in _LOGGING_VARIABLES or var in ("CTDB_NODES", "CTDB_PUBLIC_ADDRESSES", "CTDB_PUBLIC_INTERFACE"):
            pass  # handled below
        elif var in claimed:
            pass  # a plugin setting: read by ctdbcore.config.plugin_settings
        elif var.startswith("CTDB_"):
            warnings.append(
                f"{where}:{lineno}: {var} is not a daemon setting in CTDB 4.17 "
                "(event script options belong in script.options); ignored"
            )

    # Logging: CTDB_LOGGING (4.x) beats CTDB_SYSLOG=yes beats CTDB_LOGFILE.
    location: tuple[str, int, str] | None = None
    if "CTDB_LOGFILE" in assigns and assigns["CTDB_LOGFILE"][0]:
        value, lineno = assigns["CTDB_LOGFILE"]
        location = ("file:" + value, lineno, "CTDB_LOGFILE")
    if "CTDB_SYSLOG" in assigns and assigns["CTDB_SYSLOG"][0]:
        value, lineno = assigns["CTDB_SYSLOG"]
        try:
            if parse_bool(value):
                location = ("syslog", lineno, "CTDB_SYSLOG")
        except ValueError:
            errors.add(lineno, f"invalid CTDB_SYSLOG={value!r}: expected yes or no")
    if "CTDB_LOGGING" in assigns and assigns["CTDB_LOGGING"][0]:
        value, lineno = assigns["CTDB_LOGGING"]
        location = (value, lineno, "CTDB_LOGGING")
    if location is not None:
        set_conf("logging", "location", location[0], location[1], location[2])

    def path_var(var: str) -> str | None:
        value = assigns.get(var, ("", 0))[0]
        return value or None

    errors.raise_if_any()
    return Sysconfig(
        path=path,
        overrides=overrides,
        nodes_path=path_var("CTDB_NODES"),
        public_addresses_path=path_var("CTDB_PUBLIC_ADDRESSES"),
        public_interface=path_var("CTDB_PUBLIC_INTERFACE"),
        managed_services=frozenset(services),
        tunables=tunables,
        variables={var: value for var, (value, _) in assigns.items()},
        lines={var: line for var, (_, line) in assigns.items()},
        warnings=tuple(warnings),
    )


def parse_sysconfig(path: str, *, claimed: Collection[str] = ()) -> Sysconfig:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        errors = ErrorCollector(path)
        errors.add(None, f"cannot read: {exc}")
        raise ConfigErrors(errors.errors) from exc
    return parse_sysconfig_text(text, path, claimed=claimed)
