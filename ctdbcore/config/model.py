"""Everything ctdbd is configured with, loaded in one call.

:func:`load_config` reads every input, collects the errors of *all* files and
raises them as one :class:`ConfigErrors`, so ``ctdbd --check-config`` lists
every problem at once. Order of precedence: built-in defaults < ctdb.conf /
ctdb.tunables < legacy sysconfig (the seed paper's file, when given).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, get_origin

import attrs
import cattrs

from ctdbcore.config import convert
from ctdbcore.config.ctdbconf import (
    CtdbConf,
    DatabaseConfig,
    field_for_key,
    parse_ctdb_conf,
    parse_ctdb_conf_text,
)
from ctdbcore.config.errors import ConfigError, ConfigErrors
from ctdbcore.config.nodes import NodeEntry, parse_nodes_file
from ctdbcore.config.paths import Paths
from ctdbcore.config.plugin_settings import Inputs, PluginDecl, PluginSettings, load_plugin_settings, variables_of
from ctdbcore.config.shellvars import read_assignments_file
from ctdbcore.config.public_addresses import PublicAddress, parse_public_addresses_file
from ctdbcore.config.sysconfig import MANAGED_PLUGINS, MANAGES_VARIABLES, Sysconfig, parse_sysconfig
from ctdbcore.config.tunables import Tunables, parse_tunables_file


@attrs.frozen
class Config:
    ctdb_conf: CtdbConf
    nodes: tuple[NodeEntry, ...]
    public_addresses: tuple[PublicAddress, ...]
    tunables: Tunables
    paths: Paths
    #: services to run event scripts for (from CTDB_MANAGES_*; empty in pure 4.17 setups)
    managed_services: frozenset[str] = frozenset()
    #: event plugin name -> its effective settings (see ctdbcore.config.plugin_settings)
    plugin_settings: dict[str, PluginSettings] = attrs.field(factory=dict)
    #: the files that were actually read, in reading order
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = attrs.field(default=(), eq=False)


def make_converter(converter: cattrs.Converter | None = None) -> cattrs.Converter:
    """The package converter plus the output-only hooks of ``config_to_dict``."""
    converter = convert.make_converter(converter)
    converter.register_unstructure_hook(Tunables, lambda t: dict(t.listvars()))
    # JSON has no sets; sorted lists also make the output stable.
    converter.register_unstructure_hook_func(
        lambda t: t in (set, frozenset) or get_origin(t) in (set, frozenset),
        lambda v: sorted(v),
    )
    return converter


_converter = make_converter()


def config_to_dict(config: Config) -> dict[str, Any]:
    """JSON-ready form for ``--json`` / ``--check-config`` (addresses as strings)."""
    return _converter.unstructure(config)


def _apply_overrides(conf: CtdbConf, sysconfig: Sysconfig) -> CtdbConf:
    changes: dict[str, Any] = {}
    for section, values in sysconfig.overrides.items():
        fields = {field_for_key(section, key): value for key, value in values.items()}
        changes[section] = attrs.evolve(getattr(conf, section), **fields)
    return attrs.evolve(conf, **changes)


def load_config(
    paths: Paths,
    *,
    sysconfig_path: str | None = None,
    extra_sections: Mapping[str, type] = {},
    plugins: Sequence[PluginDecl] = (),
    absent_plugins: Mapping[str, str] = {},
) -> Config:
    """Read every input; :class:`ConfigErrors` with all problems of all files.

    :param plugins: the loaded event plugins, whose settings are read too.
    :param absent_plugins: plugin name -> distribution, for plugins that are known but
        not installed (their ctdb.conf sections are ignored with a warning).
    """
    errors: list[ConfigError] = []
    sources: list[str] = []
    warnings: list[str] = []
    claimed = {var for p in plugins if p.settings is not None for var in variables_of(p.settings)}
    plugin_names = [p.name for p in plugins]

    sysconfig = Sysconfig()
    if sysconfig_path is not None:
        try:
            sysconfig = parse_sysconfig(sysconfig_path, claimed=claimed)
            sources.append(sysconfig_path)
            warnings.extend(sysconfig.warnings)
        except ConfigErrors as exc:
            errors.extend(exc.errors)

    conf: CtdbConf | None
    conf_path = paths.ctdb_conf
    if os.path.exists(conf_path):
        try:
            conf = parse_ctdb_conf(conf_path, var_dir=paths.var_dir, extra_sections=extra_sections,
                                   plugin_sections=plugin_names, absent_plugins=absent_plugins)
            sources.append(conf_path)
            warnings.extend(conf.warnings)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            conf = None
    else:
        # No ctdb.conf is a valid 4.17 setup: everything at its default. Plugin
        # sections still go through the parser so their required keys are checked.
        try:
            conf = parse_ctdb_conf_text("", conf_path, var_dir=paths.var_dir, extra_sections=extra_sections,
                                        plugin_sections=plugin_names)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            conf = None
    if conf is not None:
        conf = _apply_overrides(conf, sysconfig)

    nodes_path = sysconfig.nodes_path or paths.nodes
    nodes: tuple[NodeEntry, ...] = ()
    try:
        nodes = parse_nodes_file(nodes_path)
        sources.append(nodes_path)
    except ConfigErrors as exc:
        errors.extend(exc.errors)

    pa_path = sysconfig.public_addresses_path or paths.public_addresses
    public: tuple[PublicAddress, ...] = ()
    # Optional in its default place (a node may host no public IPs), but a
    # path the sysconfig names explicitly must exist.
    if sysconfig.public_addresses_path is not None or os.path.exists(pa_path):
        try:
            public = parse_public_addresses_file(pa_path, default_iface=sysconfig.public_interface)
            sources.append(pa_path)
        except ConfigErrors as exc:
            errors.extend(exc.errors)

    tunables = Tunables()
    if os.path.exists(paths.tunables):
        try:
            for name, value in parse_tunables_file(paths.tunables).items():
                tunables.set(name, value)
            sources.append(paths.tunables)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    for name, value in sysconfig.tunables.items():
        tunables.set(name, value)

    if conf is not None and conf.cluster.node_address is not None and nodes:
        known = {n.address for n in nodes if not n.deleted}
        if conf.cluster.node_address not in known:
            where = sysconfig_path if "node address" in sysconfig.overrides.get("cluster", {}) else conf_path
            errors.append(ConfigError(
                where, None,
                f"node address {conf.cluster.node_address} is not in the nodes file {nodes_path}",
            ))

    plugin_settings = _load_plugin_settings(plugins, paths, conf, sysconfig, sysconfig_path, errors, sources)

    if errors:
        raise ConfigErrors(errors)
    assert conf is not None
    return Config(
        ctdb_conf=conf,
        nodes=nodes,
        public_addresses=public,
        tunables=tunables,
        paths=paths,
        managed_services=sysconfig.managed_services,
        plugin_settings=plugin_settings,
        sources=tuple(sources),
        warnings=tuple(warnings),
    )


def _managed_sources(sysconfig: Sysconfig, path: str | None) -> dict[str, str]:
    """Service name -> where the seed's sysconfig asked for it to be managed."""
    found: dict[str, str] = {}
    for var, service in MANAGES_VARIABLES.items():
        if service in sysconfig.managed_services and var in sysconfig.lines:
            found[service] = f"{path}:{sysconfig.lines[var]} ({var})"
    line = sysconfig.lines.get("CTDB_MANAGED_SERVICES")
    for service in sysconfig.managed_services:
        if service not in found and line is not None:
            found[service] = f"{path}:{line} (CTDB_MANAGED_SERVICES)"
    return found


def _load_plugin_settings(
    plugins: Sequence[PluginDecl],
    paths: Paths,
    conf: CtdbConf | None,
    sysconfig: Sysconfig,
    sysconfig_path: str | None,
    errors: list[ConfigError],
    sources: list[str],
) -> dict[str, PluginSettings]:
    if not plugins:
        return {}
    script_options = None
    so_path = paths.etc("script.options")
    if os.path.exists(so_path):
        try:
            script_options = (so_path, read_assignments_file(so_path))
            sources.append(so_path)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    sections = {}
    if conf is not None:
        sections = {name: (paths.ctdb_conf, values, header) for name, (values, header) in conf.plugin_raw.items()}
    managed_by_service = _managed_sources(sysconfig, sysconfig_path)
    managed = {plugin: where for service, where in managed_by_service.items()
               for plugin in MANAGED_PLUGINS.get(service, (service,))}
    sys_vars = None
    if sysconfig_path is not None:
        sys_vars = (sysconfig_path, {v: (sysconfig.variables[v], sysconfig.lines[v]) for v in sysconfig.lines})
    inputs = Inputs(script_options=script_options, options_dir=paths.etc(os.path.join("events", "legacy")),
                    sections=sections, sysconfig=sys_vars, managed=managed)
    result: dict[str, PluginSettings] = {}
    for p in plugins:
        settings, errs = load_plugin_settings(p.name, p.script, p.settings, inputs)
        errors.extend(errs)
        result[p.name] = settings
    return result


__all__ = ["Config", "DatabaseConfig", "config_to_dict", "load_config", "make_converter"]
