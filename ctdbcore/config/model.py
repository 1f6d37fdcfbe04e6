"""Everything ctdbd reads at start, loaded and checked in one go."""

from __future__ import annotations

import ipaddress
import os

import attrs
import cattrs

from ctdbcore.config.ctdbconf import CtdbConf, defaults_for, parse_ctdb_conf
from ctdbcore.config.errors import ConfigError, ConfigErrors
from ctdbcore.config.nodes import NodeEntry, parse_nodes_file
from ctdbcore.config.paths import Paths
from ctdbcore.config.public_addresses import PublicAddress, parse_public_addresses_file
from ctdbcore.config.sysconfig import parse_sysconfig
from ctdbcore.config.tunables import Tunables, parse_tunables_file


@attrs.define
class Config:
    ctdb_conf: CtdbConf
    nodes: tuple[NodeEntry, ...]
    public_addresses: tuple[PublicAddress, ...]
    tunables: Tunables
    paths: Paths
    managed_services: set[str] = attrs.field(factory=set)
    sources: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)


def load_config(paths: Paths, *, sysconfig_path: str | None = None, extra_sections: dict[str, type] = {}) -> Config:
    errors: list[ConfigError] = []
    sources: list[str] = []
    conf = defaults_for(paths.var_dir)
    if os.path.exists(paths.ctdb_conf):
        try:
            conf = parse_ctdb_conf(paths.ctdb_conf, extra_sections=extra_sections, base=conf)
            sources.append(paths.ctdb_conf)
        except ConfigErrors as e:
            errors += e.errors
    sc = None
    if sysconfig_path:
        try:
            sc = parse_sysconfig(sysconfig_path)
            sources.append(sysconfig_path)
            for (section, opt), v in sc.conf.items():
                setattr(getattr(conf, section), opt, v)
            conf.warnings += sc.warnings
        except ConfigErrors as e:
            errors += e.errors
    nodes_path = (sc.nodes_path if sc and sc.nodes_path else None) or paths.nodes
    nodes: tuple[NodeEntry, ...] = ()
    try:
        nodes = parse_nodes_file(nodes_path)
        sources.append(nodes_path)
    except ConfigErrors as e:
        errors += e.errors
    if conf.cluster.node_address is not None:
        try:
            addr = ipaddress.ip_address(conf.cluster.node_address)
            if nodes and addr not in {n.address for n in nodes if not n.deleted}:
                errors.append(ConfigError(paths.ctdb_conf, None,
                                          f"[cluster] node address {addr} is not in the nodes file {nodes_path}"))
        except ValueError:
            errors.append(ConfigError(paths.ctdb_conf, None, f"[cluster] node address {conf.cluster.node_address!r} is not an address"))
    pa_path = (sc.public_addresses_path if sc and sc.public_addresses_path else None) or paths.public_addresses
    public: tuple[PublicAddress, ...] = ()
    if os.path.exists(pa_path):
        try:
            public = parse_public_addresses_file(pa_path, default_iface=sc.public_interface if sc else None)
            sources.append(pa_path)
        except ConfigErrors as e:
            errors += e.errors
    tunables = Tunables()
    if os.path.exists(paths.tunables):
        try:
            for name, v in parse_tunables_file(paths.tunables).items():
                tunables.set(name, v)
            sources.append(paths.tunables)
        except ConfigErrors as e:
            errors += e.errors
    if sc:
        for name, v in sc.tunables.items():
            tunables.set(name, v)
    if errors:
        raise ConfigErrors(errors)
    return Config(conf, nodes, public, tunables, paths, set(sc.managed_services) if sc else set(), sources,
                  list(conf.warnings))


def make_converter(converter: cattrs.Converter | None = None) -> cattrs.Converter:
    """Add our hooks to a converter: addresses as strings, sets as sorted lists."""
    c = converter or cattrs.Converter()
    for t in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        c.register_unstructure_hook(t, str)
    c.register_unstructure_hook(set, lambda s: sorted(s))
    c.register_unstructure_hook(Tunables, lambda t: dict(t.listvars()))
    return c


def config_to_dict(config: Config) -> dict:
    return make_converter().unstructure(config)
