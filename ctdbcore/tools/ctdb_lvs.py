"""``ctdb lvs leader|list|status``: 4.17's ``ctdb_lvs`` helper, in the tool.

As :mod:`ctdbcore.tools.ctdb_natgw`, with the group file ``CTDB_LVS_NODES`` (default
``$CTDB_BASE/lvs_nodes``) and the choices of :func:`ctdbcore.builtin.groups.lvs_usable`
and :func:`~ctdbcore.builtin.groups.lvs_leader`. Exit statuses are the helper's:
``leader`` prints the leader's PNN, or nothing with exit 255 when no node is usable;
``list`` prints ``PNN IP`` of the usable nodes of the group (exit 0 even if none);
``status`` prints the ``ctdb nodestatus all`` lines of the group's nodes; 10 when
the node status cannot be read.
"""

from __future__ import annotations

from typing import Any

from ctdbcore.builtin.groups import GroupError, lvs_leader, lvs_usable, read_group_file
from ctdbcore.tools.ctdb_natgw import helper_usage, node_rows, nodes_file, plugin_settings, status_of_group

LVS_USAGE = """{path} <option>

<option> is one of:
  leader     Display node number of leader node
  list       List node number and private IP address of usable nodes in group
  status     Show status of all nodes in LVS group
"""


def control_lvs(t: Any, args: list[str]) -> int:
    from ctdbcore.builtin import lvs
    from ctdbcore.config.errors import ConfigErrors

    if len(args) != 1:
        t.usage("lvs")
    if args[0] not in ("leader", "list", "status"):
        return helper_usage(t, "lvs", LVS_USAGE)
    try:
        path = nodes_file(plugin_settings("lvs", lvs), "lvs_nodes")
    except ConfigErrors as exc:
        t.eprint(f"{exc}\n")
        return 1
    try:
        lines = read_group_file(path, "ctdb_lvs", "LVS")
    except GroupError as exc:
        t.eprint(f"{exc}\n")
        return 1
    if args[0] == "status":
        status_of_group(t, lines)
        return 0
    rows = node_rows(t)
    if not rows:
        return 10
    if args[0] == "leader":
        leader = lvs_leader(lines, rows)
        if leader is None:
            return 255
        t.print(f"{leader.pnn}\n")
        return 0
    for r in lvs_usable((g.ip for g in lines), rows):
        t.print(f"{r.text}\n")
    return 0
