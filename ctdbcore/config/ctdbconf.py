"""`ctdb.conf` as 4.17 reads it: INI sections, `key = value`, `#` comments.

Unknown sections and keys are errors (as 4.17's conf.c), reported with file and
line, all of them at once. Sections owned by plugins are passed in as attrs classes.
One default differs from 4.17: `[cluster] leader timeout` is 2 s (4.17: 5 s),
because the daemon also replaces a leader whose connection drops at once, and the
timeout only covers a leader that hangs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs
import cattrs

from ctdbcore.config.errors import Collector, ConfigError, ConfigErrors

LOG_LEVELS = ("ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


@attrs.define
class LoggingConfig:
    location: str = "file:/var/log/ctdb/log.ctdb"
    log_level: str = "NOTICE"


@attrs.define
class ClusterConfig:
    transport: str = "tcp"
    node_address: str | None = None
    cluster_lock: str | None = None
    leader_timeout: int = 2
    leader_capability: bool = True


@attrs.define
class DatabaseConfig:
    volatile_database_directory: str = "/var/lib/ctdb/volatile"
    persistent_database_directory: str = "/var/lib/ctdb/persistent"
    state_database_directory: str = "/var/lib/ctdb/state"
    lock_debug_script: str | None = None
    tdb_mutexes: bool = True


@attrs.define
class EventConfig:
    debug_script: str | None = None


@attrs.define
class FailoverConfig:
    disabled: bool = False


@attrs.define
class LegacyConfig:
    realtime_scheduling: bool = True
    lmaster_capability: bool = True
    start_as_stopped: bool = False
    start_as_disabled: bool = False
    script_log_level: str = "ERROR"


@attrs.define
class CtdbConf:
    logging: LoggingConfig = attrs.field(factory=LoggingConfig)
    cluster: ClusterConfig = attrs.field(factory=ClusterConfig)
    database: DatabaseConfig = attrs.field(factory=DatabaseConfig)
    event: EventConfig = attrs.field(factory=EventConfig)
    failover: FailoverConfig = attrs.field(factory=FailoverConfig)
    legacy: LegacyConfig = attrs.field(factory=LegacyConfig)
    extra: dict[str, object] = attrs.field(factory=dict)
    warnings: list[str] = attrs.field(factory=list)


SECTIONS: dict[str, type] = {
    "logging": LoggingConfig,
    "cluster": ClusterConfig,
    "database": DatabaseConfig,
    "event": EventConfig,
    "failover": FailoverConfig,
    "legacy": LegacyConfig,
}
# 4.17's deprecated spelling; `cluster lock` wins when both are set.
ALIASES = {("cluster", "recovery lock"): "cluster lock"}


def defaults_for(var_dir: str) -> CtdbConf:
    conf = CtdbConf()
    conf.database = DatabaseConfig(
        volatile_database_directory=f"{var_dir}/volatile",
        persistent_database_directory=f"{var_dir}/persistent",
        state_database_directory=f"{var_dir}/state",
    )
    return conf


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


def parse_log_level(value: str) -> str:
    v = value.strip().upper()
    if v in LOG_LEVELS:
        return v
    if v.isdigit() and 0 <= int(v) <= 10:
        return LOG_LEVELS[min(int(v), 4)]
    raise ValueError(f"{value!r} is not a log level ({', '.join(LOG_LEVELS)} or 0-10)")


def parse_location(value: str) -> str:
    v = value.strip()
    if v == "stderr" or v.startswith("file:") and len(v) > 5:
        return v
    if v in ("syslog", "syslog:nonblocking", "syslog:udp", "syslog:udp-rfc5424"):
        return v
    raise ValueError(f"{value!r} is not a log location (file:PATH, syslog[:nonblocking|udp|udp-rfc5424], stderr)")


def _convert(section: str, key: str, field: attrs.Attribute, value: str):
    if key == "log level" or (section == "legacy" and key == "script log level"):
        return parse_log_level(value)
    if section == "logging" and key == "location":
        return parse_location(value)
    typ = field.type
    if typ in (bool, "bool"):
        return parse_bool(value)
    if typ in (int, "int"):
        try:
            n = int(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
        if n <= 0:
            raise ValueError(f"{n} must be positive")
        return n
    return value.strip()


_SECTION = re.compile(r"^\[\s*([^\]]+?)\s*\]$")


def parse_ctdb_conf_text(
    text: str, path: str | None = None, *, extra_sections: Mapping[str, type] = {}, base: CtdbConf | None = None
) -> CtdbConf:
    conf = base or CtdbConf()
    errs = Collector(path)
    section: str | None = None
    seen: dict[tuple[str, str], int] = {}
    extra_raw: dict[str, dict[str, tuple[int, str]]] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(";"):
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group(1).lower()
            if section not in SECTIONS and section not in extra_sections:
                errs.add(no, f"unknown section [{section}]")
                section = "!bad"
            elif section in extra_sections:
                extra_raw.setdefault(section, {})
            continue
        if "=" not in line:
            errs.add(no, f"expected 'key = value', got {line!r}")
            continue
        key, value = (p.strip() for p in line.split("=", 1))
        key = re.sub(r"\s+", " ", key.lower())
        if section is None:
            errs.add(no, f"option {key!r} outside any section")
            continue
        if section == "!bad":
            continue
        if section in extra_sections:
            extra_raw[section][key] = (no, value)
            continue
        target = ALIASES.get((section, key), key)
        if target != key:
            conf.warnings.append(f"{path}:{no}: [{section}] {key} is deprecated, use {target}")
            if (section, target) in seen:
                continue  # the new name wins
        elif (section, key) in ALIASES.values():
            pass
        cls = SECTIONS[section]
        fname = target.replace(" ", "_")
        fields = {f.name: f for f in attrs.fields(cls)}
        if fname not in fields:
            errs.add(no, f"unknown option [{section}] {key!r}")
            continue
        try:
            val = _convert(section, target, fields[fname], value)
        except ValueError as e:
            errs.add(no, f"[{section}] {key}: {e}")
            continue
        seen[(section, target)] = no
        setattr(getattr(conf, section), fname, val)
    for section, items in extra_raw.items():
        cls = extra_sections[section]
        conv = cattrs.Converter(forbid_extra_keys=True)
        data = {k.replace(" ", "_"): v for k, (_, v) in items.items()}
        names = {f.name for f in attrs.fields(cls)}
        bad = [(no, k) for k, (no, _) in items.items() if k.replace(" ", "_") not in names]
        for no, k in bad:
            errs.add(no, f"unknown option [{section}] {k!r}")
        if bad:
            continue
        try:
            conf.extra[section] = conv.structure(data, cls)
        except Exception as e:  # cattrs groups per-field errors
            msgs = cattrs.transform_error(e) if isinstance(e, cattrs.BaseValidationError) else [str(e)]
            first = min(no for no, _ in items.values()) if items else None
            for msg in msgs:
                errs.add(first, f"[{section}] {msg}")
    errs.raise_if_any()
    return conf


def parse_ctdb_conf(path: str, *, extra_sections: Mapping[str, type] = {}, base: CtdbConf | None = None) -> CtdbConf:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigErrors([ConfigError(path, None, f"cannot read: {e.strerror}")]) from None
    return parse_ctdb_conf_text(text, path, extra_sections=extra_sections, base=base)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def dump_ctdb_conf(conf: CtdbConf) -> str:
    """The effective values, in the shape of 4.17's `ctdb-config dump`."""
    out = []
    for section, cls in SECTIONS.items():
        out.append(f"[{section}]")
        obj = getattr(conf, section)
        default = cls()
        for f in attrs.fields(cls):
            key = f.name.replace("_", " ")
            v = getattr(obj, f.name)
            if v is None:
                out.append(f"\t# {key} = ")
            elif v == getattr(default, f.name):
                out.append(f"\t# {key} = {_fmt(v)}")
            else:
                out.append(f"\t{key} = {_fmt(v)}")
    return "\n".join(out) + "\n"
