"""``ctdb natgw leader|list|status``: 4.17's ``ctdb_natgw`` helper, in the tool.

4.17's ``ctdb natgw`` runs ``/usr/libexec/ctdb/ctdb_natgw CMD``, which reads the
group file (``CTDB_NATGW_NODES``, default ``$CTDB_BASE/natgw_nodes``, from
script.options and ``events/legacy/11.natgw.options``) and ``ctdb -X nodestatus all``.
This does the same in-process with the tool's own connection, with the settings
ctdbd gives the natgw plugin (also its ``[natgw]`` section in ctdb.conf) and the
plugin's leader choice (:func:`ctdbcore.builtin.groups.natgw_leader`). Output and
exit statuses are the helper's: ``leader`` prints ``PNN IP`` (exit 2 and nothing
when there is none); ``list`` prints the group file's lines, the leader's annotated
``LEADER``; ``status`` prints the ``ctdb nodestatus all`` lines of the group's nodes;
a missing group file is "ctdb_natgw: NAT gateway nodes file "F" not found", exit 1.
"""

from __future__ import annotations

import os
from typing import Any

from ctdbcore.builtin.groups import GroupError, GroupLine, NodeRow, natgw_leader, parse_nodestatus_x, read_group_file

HELPER_DIR = "/usr/libexec/ctdb"

NATGW_USAGE = """{path} <option>

<option> is one of:
  leader     Display node number and private IP address of leader node
  list       List private IP addresses of nodes in group, annotate leader
  status     Show status of nodes in NAT gateway group
"""


def plugin_settings(name: str, module: Any) -> Any:
    """The settings ctdbd would give plugin ``name`` on this node (the plugin's own
    module is used when the installed entry points do not have it)."""
    from ctdbcore.config.model import load_config
    from ctdbcore.config.paths import default_paths
    from ctdbcore.config.plugin_settings import PluginDecl, settings_class
    from ctdbcore.daemon.main import _absent_plugins, _plugin_decls
    from ctdbcore.plugins.enablement import script_name
    from ctdbcore.plugins.manager import make_plugin_manager

    pm = make_plugin_manager()
    decls = _plugin_decls(pm)
    if not any(d.name == name for d in decls):
        decls.append(PluginDecl(name=name, script=script_name(name, module), settings=settings_class(module)))
    config = load_config(default_paths(os.environ), plugins=decls, absent_plugins=_absent_plugins(pm))
    return config.plugin_settings[name].values


def nodes_file(settings: Any, default_name: str) -> str:
    """The group file: the setting, else ``$CTDB_BASE/<default_name>`` (the helpers' default)."""
    if settings is not None and settings.nodes:
        return settings.nodes
    from ctdbcore.config.paths import default_paths

    return default_paths(os.environ).etc(default_name)


def node_rows(t: Any) -> list[NodeRow]:
    """``ctdb -X nodestatus all`` as the helper reads it, from this tool's connection."""
    from ctdbcore.tools import ctdb_format as fmt
    from ctdbcore.tools.ctdb import _parse_nodestring

    nodemap = t.nodemap_unknown(_parse_nodestring(t, "all"))
    return parse_nodestatus_x(fmt.format_nodemap_machine(nodemap, t.pnn, sep="|",
                                                         partially_online=t.partially_online(nodemap)))


def nodestatus_lines(t: Any) -> list[str]:
    """``ctdb nodestatus all``'s lines."""
    from ctdbcore.tools import ctdb_format as fmt
    from ctdbcore.tools.ctdb import _parse_nodestring

    nodemap = t.nodemap_unknown(_parse_nodestring(t, "all"))
    text = fmt.format_nodemap(nodemap, t.pnn, header=True, partially_online=t.partially_online(nodemap))
    return text.splitlines()


def status_of_group(t: Any, lines: list[GroupLine]) -> None:
    """The helpers' ``nodes_status``: ``awk 'ns ~ "@" $2 "@"'`` over ``ctdb nodestatus all``."""
    ips = {g.ip for g in lines}
    for line in nodestatus_lines(t):
        words = line.split()
        if (words[1] if len(words) > 1 else "") in ips:
            t.print(line + "\n")


def helper_usage(t: Any, name: str, text: str) -> int:
    path = os.environ.get(f"CTDB_{name.upper()}_HELPER") or os.path.join(HELPER_DIR, f"ctdb_{name}")
    t.print(text.format(path=path))
    return 1


def control_natgw(t: Any, args: list[str]) -> int:
    from ctdbcore.builtin import natgw
    from ctdbcore.config.errors import ConfigErrors

    if len(args) != 1:
        t.usage("natgw")
    if args[0] not in ("leader", "list", "status"):
        return helper_usage(t, "natgw", NATGW_USAGE)
    try:
        path = nodes_file(plugin_settings("natgw", natgw), "natgw_nodes")
    except ConfigErrors as exc:
        t.eprint(f"{exc}\n")
        return 1
    try:
        lines = read_group_file(path, "ctdb_natgw", "NAT gateway")
    except GroupError as exc:
        t.eprint(f"{exc}\n")
        return 1
    if args[0] == "status":
        status_of_group(t, lines)
        return 0
    leader = natgw_leader(lines, node_rows(t))
    if args[0] == "leader":
        if leader is None:
            return 2
        t.print(f"{leader.text}\n")
        return 0
    for g in lines:
        options = g.options
        if leader is not None and g.ip == leader.ip:
            options = "LEADER" + ("," if options else "") + options
        t.print(f"{g.ip}\t{options}\n" if options else f"{g.ip}\n")
    return 0
