"""Every configuration input of ctdbd: ctdb.conf, the legacy sysconfig, nodes,
public_addresses, tunables and paths. Every error names its file and line.
"""

from ctdbcore.config.ctdbconf import (
    ClusterConfig,
    CtdbConf,
    DatabaseConfig,
    EventConfig,
    FailoverConfig,
    LegacyConfig,
    LoggingConfig,
    dump_ctdb_conf,
    parse_ctdb_conf,
)
from ctdbcore.config.errors import ConfigError, ConfigErrors
from ctdbcore.config.model import Config, config_to_dict, load_config, make_converter
from ctdbcore.config.nodes import NodeEntry, parse_nodes_file
from ctdbcore.config.paths import Paths, default_paths
from ctdbcore.config.public_addresses import PublicAddress, parse_public_addresses_file
from ctdbcore.config.sysconfig import Sysconfig, parse_sysconfig
from ctdbcore.config.tunables import CHANGED_DEFAULTS, TUNABLE_TABLE, Tunables, parse_tunables_file

__all__ = [
    "CHANGED_DEFAULTS", "TUNABLE_TABLE", "ClusterConfig", "Config", "ConfigError", "ConfigErrors",
    "CtdbConf", "DatabaseConfig", "EventConfig", "FailoverConfig", "LegacyConfig", "LoggingConfig",
    "NodeEntry", "Paths", "PublicAddress", "Sysconfig", "Tunables", "config_to_dict", "default_paths",
    "dump_ctdb_conf", "load_config", "make_converter", "parse_ctdb_conf", "parse_nodes_file",
    "parse_public_addresses_file", "parse_sysconfig", "parse_tunables_file",
]
