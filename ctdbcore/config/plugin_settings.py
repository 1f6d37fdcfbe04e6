"""Settings of event plugins: declared by each plugin, read from four places.

A plugin declares its settings as an attrs class (``CTDB_SETTINGS``) whose fields
are made with :func:`setting`; each field may name the shell variable that 4.17's
script reads (``CTDB_SAMBA_SKIP_SHARE_CHECK``). ctdbd fills one instance per
plugin from, in increasing precedence:

1. the field defaults;
2. ``$CTDB_BASE/script.options`` (4.17's global script options file);
3. ``$CTDB_BASE/events/legacy/NN.name.options`` (the options file of the plugin's
   4.17 script name, e.g. ``50.samba.options``);
4. the plugin's own ``ctdb.conf`` section (``[samba]``, keys are the field names
   with spaces: ``skip share check = yes``);
5. the seed's ``/etc/sysconfig/ctdb`` (``ctdbd --sysconfig``), by variable name.

Every value is parsed by the field's ``parse`` function or by the configuration
converter for the field's type; a bad value or an unknown key is reported at the
file and line it came from. ``script.options`` is shared with other scripts, so
variables no plugin knows are ignored there; in a plugin's own options file they
are errors.

The key ``enabled`` is reserved in every plugin section (and ``CTDB_MANAGES_<X>``
in the sysconfig): it enables the plugin on this node (see
:mod:`ctdbcore.plugins.enablement`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs

from ctdbcore.config.convert import make_converter, parse_bool
from ctdbcore.config.errors import ConfigError, ConfigErrors
from ctdbcore.config.shellvars import read_assignments_file

#: attrs metadata keys of a setting.
VAR = "ctdb_var"
HELP = "ctdb_help"
PARSE = "ctdb_parse"

#: The key of every plugin section that enables the plugin.
ENABLED_KEY = "enabled"

_converter = make_converter()


def setting(
    default: Any = attrs.NOTHING,
    *,
    var: str | None = None,
    help: str = "",
    parse: Callable[[str], Any] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one setting of a plugin (an attrs field with metadata).

    :param default: the value when no file sets it.
    :param var: the 4.17 shell variable (``script.options``, ``NN.name.options``,
        the seed's sysconfig), e.g. ``"CTDB_SAMBA_CHECK_PORTS"``.
    :param help: one line for ``ctdbd --check-config`` and the docs.
    :param parse: turns the text of a value into the field's value; raise
        ``ValueError`` with a message for a bad one. Without it the field's type
        decides (bool: yes/no/true/false/on/off/1/0; int: decimal; str).
    """
    metadata: dict[str, Any] = {VAR: var, HELP: help}
    if parse is not None:
        metadata[PARSE] = parse
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


def settings_class(plugin: object) -> type | None:
    """The plugin's ``CTDB_SETTINGS`` attrs class, or None.

    :raises TypeError: it is set but not an attrs class, or a field is named
        ``enabled`` (reserved).
    """
    cls = getattr(plugin, "CTDB_SETTINGS", None)
    if cls is None:
        return None
    if not (isinstance(cls, type) and attrs.has(cls)):
        raise TypeError(f"CTDB_SETTINGS must be an attrs class, got {cls!r}")
    attrs.resolve_types(cls)
    for f in attrs.fields(cls):
        if f.name == ENABLED_KEY:
            raise TypeError(f"{cls.__name__}: the setting name {ENABLED_KEY!r} is reserved")
    return cls


def key_of(field_name: str) -> str:
    """The ctdb.conf key of a field (``skip_share_check`` → ``skip share check``)."""
    return field_name.replace("_", " ")


def variables_of(cls: type) -> dict[str, str]:
    """Shell variable → field name for the settings that have one."""
    return {f.metadata[VAR]: f.name for f in attrs.fields(cls) if f.metadata.get(VAR)}


@attrs.frozen
class PluginDecl:
    """What the configuration needs to know of one loaded event plugin.

    :ivar name: its registration name, also its ctdb.conf section.
    :ivar script: its 4.17 script name ``NN.name`` (its options file is ``NN.name.options``).
    :ivar settings: its settings class, or None.
    """

    name: str
    script: str
    settings: type | None = None


@attrs.frozen
class Value:
    """One setting's text and where it was read (``path:line``, or a description)."""

    text: str
    path: str | None
    line: int | None

    @property
    def where(self) -> str:
        if self.path is None:
            return "default"
        return self.path if self.line is None else f"{self.path}:{self.line}"


@attrs.frozen
class PluginSettings:
    """The effective settings of one plugin.

    :ivar plugin: the plugin's name.
    :ivar values: an instance of the plugin's ``CTDB_SETTINGS`` (None if it has none).
    :ivar sources: field name → where its value came from (``"default"`` or ``path:line``).
    :ivar enabled: ``True``/``False`` if a configuration file enables or disables the
        plugin (``[name] enabled``, ``CTDB_MANAGES_<X>``), else None.
    :ivar enabled_source: where that came from.
    """

    plugin: str
    values: Any = None
    sources: Mapping[str, str] = attrs.field(factory=dict)
    enabled: bool | None = None
    enabled_source: str | None = None


@attrs.frozen
class Inputs:
    """The raw values every source gave, before parsing.

    :ivar script_options: the path of ``script.options`` and its assignments.
    :ivar options_dir: ``$CTDB_BASE/events/legacy`` (per-plugin options files).
    :ivar sections: plugin name → (ctdb.conf path, {key: (value, line)}, header line).
    :ivar sysconfig: (path, {variable: (value, line)}).
    :ivar managed: plugin name → where ``CTDB_MANAGES_<X>=yes`` was read.
    """

    script_options: tuple[str, Mapping[str, tuple[str, int]]] | None = None
    options_dir: str | None = None
    sections: Mapping[str, tuple[str, Mapping[str, tuple[str, int]], int]] = attrs.field(factory=dict)
    sysconfig: tuple[str, Mapping[str, tuple[str, int]]] | None = None
    managed: Mapping[str, str] = attrs.field(factory=dict)


def _parse_value(field: attrs.Attribute, text: str) -> Any:
    fn = field.metadata.get(PARSE)
    if fn is not None:
        return fn(text)
    tp = field.type
    if tp is bool:
        return parse_bool(text)
    try:
        return _converter.structure(text, tp)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(str(e) for e in exc.exceptions)) from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc


def load_plugin_settings(
    name: str, script: str, cls: type | None, inputs: Inputs
) -> tuple[PluginSettings, list[ConfigError]]:
    """Collect and parse one plugin's settings; return them and every error found.

    :param name: the plugin name (its ctdb.conf section).
    :param script: its 4.17 script name, ``NN.name`` (its options file).
    :param cls: its settings class, or None.
    """
    errors: list[ConfigError] = []
    if cls is not None:
        attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)} if cls is not None else {}
    by_var = variables_of(cls) if cls is not None else {}
    raw: dict[str, Value] = {}
    enabled: bool | None = None
    enabled_source: str | None = None

    if inputs.script_options is not None:
        path, assigns = inputs.script_options
        for var, (text, line) in assigns.items():
            if var in by_var:
                raw[by_var[var]] = Value(text, path, line)

    if inputs.options_dir is not None:
        path = os.path.join(inputs.options_dir, f"{script}.options")
        if os.path.exists(path):
            try:
                assigns = read_assignments_file(path)
            except ConfigErrors as exc:
                errors.extend(exc.errors)
                assigns = {}
            for var, (text, line) in assigns.items():
                if var in by_var:
                    raw[by_var[var]] = Value(text, path, line)
                else:
                    known = ", ".join(sorted(by_var)) or "none"
                    errors.append(ConfigError(path, line, f"unknown setting {var} for plugin {name} (known: {known})"))

    section = inputs.sections.get(name)
    if section is not None:
        path, values, header = section
        for key, (text, line) in values.items():
            if key == ENABLED_KEY:
                try:
                    enabled = parse_bool(text)
                    enabled_source = f"{path}:{line}"
                except ValueError as exc:
                    errors.append(ConfigError(path, line, f"invalid value for [{name}] {key} = {text}: {exc}"))
                continue
            fname = key.replace(" ", "_")
            if "_" in key or key != key.lower() or fname not in fields:
                known = ", ".join([ENABLED_KEY, *(key_of(f) for f in fields)])
                errors.append(ConfigError(path, line, f"unknown key '{key}' in section [{name}] (known: {known})"))
                continue
            raw[fname] = Value(text, path, line)

    if inputs.managed.get(name) is not None:
        enabled, enabled_source = True, inputs.managed[name]

    if inputs.sysconfig is not None:
        path, assigns = inputs.sysconfig
        for var, (text, line) in assigns.items():
            if var in by_var:
                raw[by_var[var]] = Value(text, path, line)

    values: dict[str, Any] = {}
    for fname, value in raw.items():
        field = fields[fname]
        try:
            values[fname] = _parse_value(field, value.text)
        except ValueError as exc:
            label = field.metadata.get(VAR) if value.path and not value.path.endswith(".conf") else None
            what = label or f"[{name}] {key_of(fname)}"
            errors.append(ConfigError(value.path, value.line, f"invalid value for {what} = {value.text}: {exc}"))
    instance = None
    if cls is not None and not errors:
        try:
            instance = cls(**values)
        except (TypeError, ValueError) as exc:
            errors.append(ConfigError(None, None, f"settings of plugin {name}: {exc}"))
    sources = {f: (raw[f].where if f in raw else "default") for f in fields}
    return PluginSettings(plugin=name, values=instance, sources=sources,
                          enabled=enabled, enabled_source=enabled_source), errors


def settings_to_dict(settings: PluginSettings) -> dict[str, Any]:
    """JSON-ready form for ``ctdbd --check-config --json``."""
    values = _converter.unstructure(settings.values) if settings.values is not None else {}
    return {
        "enabled_by_config": settings.enabled,
        "enabled_source": settings.enabled_source,
        "settings": values,
        "sources": dict(settings.sources),
    }


def describe_field(cls: type, fname: str) -> tuple[str, str | None, str]:
    """(ctdb.conf key, shell variable, help) of one field, for listings."""
    field = attrs.fields_dict(cls)[fname]
    return key_of(fname), field.metadata.get(VAR), field.metadata.get(HELP, "")

