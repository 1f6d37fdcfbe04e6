"""Everything ctdbd is configured with, loaded in one call.

:func:`load_config` reads every input, collects the errors of *all* files and
raises them as one :class:`ConfigErrors`, so ``ctdbd --check-config`` lists
every problem at once. Order of precedence: built-in defaults < ctdb.conf /
ctdb.tunables < legacy sysconfig (the seed paper's file, when given).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
from ctdbcore.config.public_addresses import PublicAddress, parse_public_addresses_file
from ctdbcore.config.sysconfig import Sysconfig, parse_sysconfig
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
) -> Config:
    errors: list[ConfigError] = []
    sources: list[str] = []
    warnings: list[str] = []

    sysconfig = Sysconfig()
    if sysconfig_path is not None:
        try:
            sysconfig = parse_sysconfig(sysconfig_path)
            sources.append(sysconfig_path)
            warnings.extend(sysconfig.warnings)
        except ConfigErrors as exc:
            errors.extend(exc.errors)

    conf: CtdbConf | None
    conf_path = paths.ctdb_conf
    if os.path.exists(conf_path):
        try:
            conf = parse_ctdb_conf(conf_path, var_dir=paths.var_dir, extra_sections=extra_sections)
            sources.append(conf_path)
            warnings.extend(conf.warnings)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            conf = None
    else:
        # No ctdb.conf is a valid 4.17 setup: everything at its default. Plugin
        # sections still go through the parser so their required keys are checked.
        try:
            conf = parse_ctdb_conf_text("", conf_path, var_dir=paths.var_dir, extra_sections=extra_sections)
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
        sources=tuple(sources),
        warnings=tuple(warnings),
    )


__all__ = ["Config", "DatabaseConfig", "config_to_dict", "load_config", "make_converter"]
