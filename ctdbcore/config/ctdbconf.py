"""``ctdb.conf`` as 4.17 reads it (common/conf.c + the *_conf.c option tables).

The file is ini: ``[section]``, ``key = value``, ``#``/``;`` comment lines.
Keys are the 4.17 spellings, lowercase with single spaces ("log level"); a key
maps to the attrs field of the same name with spaces turned into underscores.

Every section is an attrs class structured by the package's cattrs converter.
A field may carry ``metadata={"ctdb_parse": fn}`` to parse and check its string
value (log levels, locations, absolute paths); plugins can use the same hook in
the classes they pass as ``extra_sections``.

One default differs from 4.17 on purpose: see :class:`ClusterConfig`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from ctdbcore.config.convert import IPAddress, make_converter, parse_int
from ctdbcore.config.errors import ConfigErrors, ErrorCollector
from ctdbcore.config.paths import DEFAULT_VAR_DIR

# Samba's debug level names, in numeric order; their DBGLVL numbers are
# ERROR 0, WARNING 1, NOTICE 3, INFO 5, DEBUG 10 (lib/util/debug.h).
LOG_LEVEL_NAMES = ("ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
_DBGLVL = {"ERROR": 0, "WARNING": 1, "NOTICE": 3, "INFO": 5, "DEBUG": 10}
SYSLOG_METHODS = ("nonblocking", "udp", "udp-rfc5424")


def parse_log_level(value: str) -> str:
    """A level name (any case; stored upper case) or a number 0-10 (kept as given)."""
    text = value.strip()
    if text.upper() in LOG_LEVEL_NAMES:
        return text.upper()
    if text.isascii() and text.isdigit() and 0 <= int(text) <= 10:
        return str(int(text))
    raise ValueError(f"invalid log level {value!r} (use {', '.join(LOG_LEVEL_NAMES)} or 0-10)")


def log_level_number(level: str) -> int:
    """The numeric Samba debug level (DBGLVL) of a parsed log level."""
    if level in _DBGLVL:
        return _DBGLVL[level]
    return int(level)


def parse_log_location(value: str) -> str:
    """``file:PATH``, ``syslog[:METHOD]``, or our ``stderr`` for foreground runs."""
    text = value.strip()
    if text == "stderr" or text == "syslog":
        return text
    if text.startswith("file:"):
        if text == "file:":
            raise ValueError("location 'file:' needs a path (or use 'stderr')")
        return text
    if text.startswith("syslog:"):
        method = text.partition(":")[2]
        if method in SYSLOG_METHODS:
            return text
        raise ValueError(f"invalid syslog method {method!r} (use {', '.join(SYSLOG_METHODS)})")
    raise ValueError(f"invalid log location {value!r} (use file:PATH, syslog[:METHOD] or stderr)")


def parse_abs_path(value: str) -> str:
    text = value.strip()
    if not text.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    return text


def parse_optional_str(value: str | None) -> str | None:
    """``key =`` with nothing after it means "unset", as for a missing key."""
    if value is None:
        return None
    text = value.strip()
    return text or None


def parse_positive_int(value: Any) -> int:
    number = parse_int(value)
    if number <= 0:
        raise ValueError(f"{value!r} must be a positive integer")
    return number


def parse_transport(value: str) -> str:
    # Transports are plugins, so any well-formed name passes here; the daemon
    # reports a name no installed plugin provides.
    text = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        raise ValueError(f"invalid transport name {value!r}")
    return text


def _parse(fn: Callable[[Any], Any]) -> dict[str, Any]:
    return {"ctdb_parse": fn}


@attrs.frozen
class LoggingConfig:
    location: str = attrs.field(default="file:/var/log/ctdb/log.ctdb", metadata=_parse(parse_log_location))
    log_level: str = attrs.field(default="NOTICE", metadata=_parse(parse_log_level))


@attrs.frozen
class ClusterConfig:
    """``[cluster]``.

    ``leader timeout`` defaults to 2 s here, not 4.17's 5 s: our daemon starts an
    election as soon as the leader's node is known dead, so the timeout only
    covers a leader that is alive but silent, and a shorter wait costs nothing.
    ``recovery lock`` is read as a deprecated alias of ``cluster lock``.
    """

    transport: str = attrs.field(default="tcp", metadata=_parse(parse_transport))
    node_address: IPAddress | None = None
    cluster_lock: str | None = attrs.field(default=None, metadata=_parse(parse_optional_str))
    leader_timeout: int = attrs.field(default=2, metadata=_parse(parse_positive_int))
    leader_capability: bool = True


def _var(name: str) -> str:
    return os.path.join(DEFAULT_VAR_DIR, name)


@attrs.frozen
class DatabaseConfig:
    """``[database]``; the directory defaults follow the var dir (see :meth:`for_var_dir`)."""

    volatile_dir: str = attrs.field(default=_var("volatile"), metadata=_parse(parse_abs_path))
    persistent_dir: str = attrs.field(default=_var("persistent"), metadata=_parse(parse_abs_path))
    state_dir: str = attrs.field(default=_var("state"), metadata=_parse(parse_abs_path))
    lock_debug_script: str | None = attrs.field(default=None, metadata=_parse(parse_optional_str))
    tdb_mutexes: bool = True

    @classmethod
    def for_var_dir(cls, var_dir: str) -> DatabaseConfig:
        return cls(
            volatile_dir=os.path.join(var_dir, "volatile"),
            persistent_dir=os.path.join(var_dir, "persistent"),
            state_dir=os.path.join(var_dir, "state"),
        )


@attrs.frozen
class EventConfig:
    debug_script: str | None = attrs.field(default=None, metadata=_parse(parse_optional_str))


@attrs.frozen
class FailoverConfig:
    disabled: bool = False


@attrs.frozen
class LegacyConfig:
    realtime_scheduling: bool = True
    lmaster_capability: bool = True
    start_as_stopped: bool = False
    start_as_disabled: bool = False
    script_log_level: str = attrs.field(default="ERROR", metadata=_parse(parse_log_level))


# The 4.17 key spelling differs from "field name with spaces" for these.
KEY_ALIASES: dict[tuple[str, str], str] = {
    ("database", "volatile database directory"): "volatile_dir",
    ("database", "persistent database directory"): "persistent_dir",
    ("database", "state database directory"): "state_dir",
}
_FIELD_KEYS = {(section, field): key for (section, key), field in KEY_ALIASES.items()}

BUILTIN_SECTIONS: dict[str, type] = {
    "logging": LoggingConfig,
    "cluster": ClusterConfig,
    "database": DatabaseConfig,
    "event": EventConfig,
    "failover": FailoverConfig,
    "legacy": LegacyConfig,
}


@attrs.frozen
class CtdbConf:
    logging: LoggingConfig = LoggingConfig()
    cluster: ClusterConfig = ClusterConfig()
    database: DatabaseConfig = DatabaseConfig()
    event: EventConfig = EventConfig()
    failover: FailoverConfig = FailoverConfig()
    legacy: LegacyConfig = LegacyConfig()
    #: plugin-owned sections: section name -> instance of the plugin's attrs class
    extra: dict[str, Any] = attrs.field(factory=dict)
    #: sections of event plugins, unparsed: name -> ({key: (value, line)}, header line);
    #: ctdbcore.config.plugin_settings merges them with the plugin's other sources
    plugin_raw: dict[str, tuple[dict[str, tuple[str, int]], int]] = attrs.field(factory=dict, eq=False)
    #: "path:line: ..." notes such as deprecated keys; not part of equality
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)

    def section(self, name: str) -> Any:
        if name in BUILTIN_SECTIONS:
            return getattr(self, name)
        return self.extra[name]


def key_for_field(section: str, field: str) -> str:
    """The ctdb.conf key of an attrs field ("log_level" -> "log level")."""
    return _FIELD_KEYS.get((section, field), field.replace("_", " "))


def field_for_key(section: str, key: str) -> str | None:
    """The field name for a ctdb.conf key, or None if it cannot be one."""
    alias = KEY_ALIASES.get((section, key))
    if alias is not None:
        return alias
    if "_" in key or key != key.lower():
        return None  # "log_level" / "Log Level" are not 4.17 spellings
    return key.replace(" ", "_")


_converter = make_converter()


@functools.cache
def _structure_fn(cls: type) -> Callable[[Mapping[str, Any], Any], Any]:
    overrides = {
        f.name: override(struct_hook=lambda v, _t, fn=f.metadata["ctdb_parse"]: fn(v))
        for f in attrs.fields(cls)
        if "ctdb_parse" in f.metadata
    }
    return make_dict_structure_fn(cls, _converter, _cattrs_forbid_extra_keys=True, **overrides)


def structure_section(
    section: str,
    cls: type,
    values: Mapping[str, str],
    lines: Mapping[str, int],
    header_line: int | None,
    errors: ErrorCollector,
) -> Any | None:
    """Structure one section, turning cattrs errors into file:line errors."""
    try:
        return _structure_fn(cls)(values, cls)
    except ForbiddenExtraKeysError as exc:
        for name in sorted(exc.extra_fields):
            errors.add(lines.get(name, header_line), f"unknown key '{key_for_field(section, name)}' in section [{section}]")
    except ClassValidationError as exc:
        with_notes, others = exc.group_exceptions()
        for sub, note in with_notes:
            key = key_for_field(section, note.name)
            if isinstance(sub, KeyError):
                errors.add(header_line, f"[{section}] missing required key '{key}'")
            else:
                value = values.get(note.name)
                errors.add(lines.get(note.name, header_line), f"invalid value for [{section}] {key} = {value}: {sub}")
        for sub in others:
            if isinstance(sub, ForbiddenExtraKeysError):
                for name in sorted(sub.extra_fields):
                    errors.add(lines.get(name, header_line), f"unknown key '{key_for_field(section, name)}' in section [{section}]")
            else:
                errors.add(header_line, f"[{section}]: {sub}")
    except (ValueError, TypeError, cattrs.BaseValidationError) as exc:
        errors.add(header_line, f"[{section}]: {exc}")
    return None


_SECTION_RE = re.compile(r"^\[\s*([^\]]*?)\s*\]$")


@attrs.define
class _RawSection:
    header_line: int
    values: dict[str, str] = attrs.field(factory=dict)
    lines: dict[str, int] = attrs.field(factory=dict)


def _read_ini(text: str, errors: ErrorCollector) -> dict[str, _RawSection | None]:
    """Split the file into sections; unknown-section checks happen later.

    A section maps to None when its header was bad, so its keys give no
    second error each.
    """
    sections: dict[str, _RawSection | None] = {}
    current: _RawSection | None = None
    current_name: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION_RE.match(line)
        if m:
            current_name = " ".join(m.group(1).split())
            if not current_name:
                errors.add(lineno, "empty section name")
                current_name, current = "", None
                sections.setdefault("", None)
                continue
            current = sections.get(current_name) or _RawSection(header_line=lineno)
            sections[current_name] = current
            continue
        if "=" not in line:
            errors.add(lineno, f"syntax error: expected '[section]' or 'key = value', got {raw.strip()!r}")
            continue
        key, _, value = line.partition("=")
        key = " ".join(key.split())  # tolerate "log   level" and tabs
        if not key:
            errors.add(lineno, "syntax error: missing key before '='")
            continue
        if current_name is None:
            errors.add(lineno, f"key '{key}' outside any section")
            continue
        if current is None:
            continue  # inside a section whose header was already reported
        current.values[key] = value.strip()
        current.lines[key] = lineno
    return sections


def parse_ctdb_conf_text(
    text: str,
    path: str | None = "ctdb.conf",
    *,
    var_dir: str = DEFAULT_VAR_DIR,
    extra_sections: Mapping[str, type] = {},
    plugin_sections: Collection[str] = (),
    absent_plugins: Mapping[str, str] = {},
) -> CtdbConf:
    """Parse ctdb.conf text.

    ``plugin_sections`` are the sections of the loaded event plugins, kept raw in
    ``plugin_raw``; ``absent_plugins`` maps section names of plugins that are not
    installed to the distribution to suggest: such a section is a warning, not an
    error, so that uninstalling a plugin never stops ctdbd.
    """
    errors = ErrorCollector(path)
    warnings: list[str] = []
    where = path or "ctdb.conf"
    sections_cls = dict(BUILTIN_SECTIONS)
    for name, cls in extra_sections.items():
        if name in BUILTIN_SECTIONS:
            errors.add(None, f"plugin section [{name}] clashes with a built-in section")
            continue
        sections_cls[name] = cls

    raw = _read_ini(text, errors)
    plugin_raw: dict[str, tuple[dict[str, tuple[str, int]], int]] = {}
    for name, sec in raw.items():
        if not name or name in sections_cls:
            continue
        assert sec is not None
        if name in plugin_sections:
            plugin_raw[name] = ({k: (v, sec.lines[k]) for k, v in sec.values.items()}, sec.header_line)
        elif name in absent_plugins:
            warnings.append(f"{where}:{sec.header_line}: section [{name}] belongs to a plugin that is not "
                            f"installed (pip install {absent_plugins[name]}); ignored")
        else:
            errors.add(sec.header_line, f"unknown section [{name}] (no built-in section and no installed "
                                        "plugin has this name; remove the section of an uninstalled plugin)")

    result: dict[str, Any] = {}
    for name, cls in sections_cls.items():
        sec = raw.get(name)
        header_line = sec.header_line if sec else None
        values: dict[str, Any] = {}
        lines: dict[str, int] = {}
        if sec is not None:
            if name == "cluster" and "recovery lock" in sec.values:
                lineno = sec.lines["recovery lock"]
                warnings.append(f"{where}:{lineno}: [cluster] recovery lock is deprecated, use cluster lock")
                if "cluster lock" not in sec.values:
                    sec.values["cluster lock"] = sec.values["recovery lock"]
                    sec.lines["cluster lock"] = lineno
                del sec.values["recovery lock"]
            for key, value in sec.values.items():
                fname = field_for_key(name, key)
                if fname is None:
                    errors.add(sec.lines[key], f"unknown key '{key}' in section [{name}]")
                    continue
                values[fname] = value
                lines[fname] = sec.lines[key]
        if cls is DatabaseConfig:
            defaults = attrs.asdict(DatabaseConfig.for_var_dir(var_dir))
            for fname in ("volatile_dir", "persistent_dir", "state_dir"):
                values.setdefault(fname, defaults[fname])
        obj = structure_section(name, cls, values, lines, header_line, errors)
        if obj is not None:
            result[name] = obj

    errors.raise_if_any()
    extra = {name: result[name] for name in sections_cls if name not in BUILTIN_SECTIONS}
    builtin = {name: result[name] for name in BUILTIN_SECTIONS}
    return CtdbConf(**builtin, extra=extra, plugin_raw=plugin_raw, warnings=tuple(warnings))


def parse_ctdb_conf(
    path: str,
    *,
    var_dir: str = DEFAULT_VAR_DIR,
    extra_sections: Mapping[str, type] = {},
    plugin_sections: Collection[str] = (),
    absent_plugins: Mapping[str, str] = {},
) -> CtdbConf:
    """Parse ``path``; raise :class:`ConfigErrors` with every problem found.

    ``extra_sections`` maps section names owned by plugins to their attrs classes.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        errors = ErrorCollector(path)
        errors.add(None, f"cannot read: {exc}")
        raise ConfigErrors(errors.errors) from exc
    return parse_ctdb_conf_text(text, path, var_dir=var_dir, extra_sections=extra_sections,
                                plugin_sections=plugin_sections, absent_plugins=absent_plugins)


def _format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dump_ctdb_conf(conf: CtdbConf, *, var_dir: str = DEFAULT_VAR_DIR) -> str:
    """The effective values, in the layout of ``ctdb-config dump``.

    Values equal to the default are printed commented out (``# key = default``),
    so the output parses back to the same configuration.
    """
    out: list[str] = []
    defaults: dict[str, Any] = {
        name: cls() for name, cls in BUILTIN_SECTIONS.items() if cls is not DatabaseConfig
    }
    defaults["database"] = DatabaseConfig.for_var_dir(var_dir)
    names = list(BUILTIN_SECTIONS) + list(conf.extra)
    for name in names:
        obj = conf.section(name)
        try:
            default_obj = defaults.get(name) or type(obj)()
        except TypeError:
            default_obj = None  # a plugin section with required keys
        out.append(f"[{name}]")
        for f in attrs.fields(type(obj)):
            value = getattr(obj, f.name)
            key = key_for_field(name, f.name)
            default = getattr(default_obj, f.name) if default_obj is not None else attrs.NOTHING
            if value == default:
                out.append(f"\t# {key} = {_format_value(value)}")
            else:
                out.append(f"\t{key} = {_format_value(value)}")
    return "\n".join(out) + "\n"


def parse_field_value(section: str, key: str, value: str) -> Any:
    """Parse one ctdb.conf value for a built-in ``[section] key`` (ValueError if bad).

    Used for values that come from elsewhere (the legacy sysconfig), so they are
    checked exactly like the same setting in ctdb.conf.
    """
    cls = attrs.resolve_types(BUILTIN_SECTIONS[section])
    fname = field_for_key(section, key)
    field = next(f for f in attrs.fields(cls) if f.name == fname)
    fn = field.metadata.get("ctdb_parse")
    if fn is not None:
        return fn(value)
    try:
        return _converter.structure(value, field.type)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(str(e) for e in exc.exceptions)) from exc
