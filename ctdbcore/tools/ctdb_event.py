"""``ctdb event …``, ``ctdb scriptstatus`` and ``ctdb checktcpport``.

4.17's tool hands ``event`` to its ``ctdb-event`` helper, which reads and changes the
files under ``$CTDB_BASE/events/legacy`` itself and asks eventd only for status; so do
we: ``event script list|enable|disable`` work on the enable state files of
:mod:`ctdbcore.plugins.enablement` (no daemon needed), and ``event status`` reads
``<rundir>/eventstatus.json``. Output and exit codes are 4.17's (event/event_tool.c).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ctdbcore.config.paths import default_paths

EVENT_USAGE = """\
Usage: ctdb event <command> [<args>]
Commands:
  run <timeout> <component> <event> <args>   Run an event (not implemented)
  status <component> <event>                 Get status of an event
  script list <component>                    List event scripts
  script enable <component> <script>         Enable an event script
  script disable <component> <script>        Disable an event script
"""


def _events_dir() -> str:
    return os.path.join(default_paths(os.environ).etc_dir, "events", "legacy")


def _service_plugins() -> dict[str, Any]:
    from ctdbcore.plugins.manager import make_plugin_manager

    pm = make_plugin_manager()
    return {name: plugin for name, plugin in pm.list_name_plugin() if plugin is not None}


def script_list(t, component: str, run_dir: str) -> int:
    from ctdbcore.plugins.enablement import EnableState, decide, format_script_list, read_configured

    if component != "legacy":
        t.eprint(f"Command script list finished with result={errno.ENOENT}\n")
        return errno.ENOENT
    plugins = _service_plugins()
    decided = decide(plugins, EnableState(_events_dir()).read_all(), read_configured(run_dir))
    if t.opts.json:
        t.emit_json([{"script": e.script, "plugin": e.name, "enabled": e.enabled, "decided_by": e.source}
                     for e in sorted(decided.values(), key=lambda e: e.script)])
    else:
        t.print(format_script_list(decided.values()))
    return 0


def script_enable(t, component: str, script: str, enable: bool) -> int:
    from ctdbcore.plugins.enablement import EnableState, script_command

    text, code = script_command(_service_plugins(), EnableState(_events_dir()), component, script, enable)
    t.print(text)
    return code


def control_event(t, args: list[str], run_dir: str, status) -> int:
    """``event status|script …``; ``status`` is the caller's status printer."""
    if not args:
        t.print(EVENT_USAGE)
        return 1
    if args[0] == "status":
        rest = args[1:]
        if len(rest) > 2:
            t.print(EVENT_USAGE)
            return 1
        if len(rest) == 2:
            component, event = rest
        elif len(rest) == 1 and rest[0] != "legacy":
            component, event = "legacy", rest[0]
        else:
            component, event = "legacy", "monitor"
        return status(t, component, event)
    if args[0] == "script" and len(args) >= 2:
        sub, rest = args[1], args[2:]
        if sub == "list" and len(rest) == 1:
            return script_list(t, rest[0], run_dir)
        if sub in ("enable", "disable") and len(rest) == 2:
            return script_enable(t, rest[0], rest[1], sub == "enable")
    if args[0] == "run":
        t.eprint("ctdb: 'event run' is not implemented yet\n")
        return 1
    t.print(EVENT_USAGE)
    return 1


def control_checktcpport(t, args: list[str]) -> int:
    """4.17: bind ``0.0.0.0:PORT``; EADDRINUSE → "Failed to bind to TCP port N" and
    exit 98 (something listens), success → exit 0 (nothing does)."""
    from ctdbcore.plugins.service import tcp_port_listening

    if len(args) != 1:
        return -1
    word = args[0]
    # strtoul: leading digits, anything else is 0
    digits = ""
    for ch in word.strip():
        if not ch.isdigit():
            break
        digits += ch
    port = int(digits or "0") & 0xFFFF
    try:
        listening = tcp_port_listening(port)
    except OSError as exc:
        t.eprint(f"Failed to bind to TCP port {port}\n")
        return exc.errno or 1
    if listening:
        t.eprint(f"Failed to bind to TCP port {port}\n")
        return errno.EADDRINUSE
    return 0

