"""Which event plugins run on this node, and 4.17's ``ctdb event script`` commands.

An installed plugin does nothing until it is enabled on the node, as a 4.17 script
does nothing until it is linked into ``$CTDB_BASE/events/legacy/``. Each plugin has a
4.17 script name, ``NN.name`` (``CTDB_ORDER`` and the plugin name, or the plugin's
``CTDB_SCRIPT``), which is what ``ctdb event script enable legacy 50.samba`` takes
(the bare plugin name works too).

Whether a plugin runs is decided, first match wins, by:

1. the node's state file ``$CTDB_BASE/events/legacy/NN.name.plugin``, written by
   ``ctdb event script enable|disable`` (it holds ``enabled`` or ``disabled``; it lasts
   across restarts, as 4.17's symlink does);
2. the configuration: ``enabled = yes|no`` in the plugin's ``ctdb.conf`` section, or
   ``CTDB_MANAGES_<X>=yes`` in the seed's sysconfig;
3. the plugin's default, ``CTDB_ENABLED_BY_DEFAULT`` (True only for the built-ins
   Debian enables on a fresh install: 00.ctdb, 01.reclock, 05.system, 10.interface).

ctdbd reads the state files before every event run, so a change takes effect at
the next event, as with 4.17's eventd.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from ctdbcore.plugins.manager import plugin_order

STATE_SUFFIX = ".plugin"
#: Written by ctdbd in its run directory at start: what its configuration files say of
#: each plugin (``[name] enabled``, ``CTDB_MANAGES_<X>`` in a sysconfig only ctdbd was
#: given), so that ``ctdb event script list`` shows what ctdbd decides.
CONFIGURED_FILE = "plugins-configured.json"
_SCRIPT_RE = re.compile(r"^([0-9][0-9])\.([A-Za-z0-9_.+-]+)$")


def script_name(name: str, plugin: object) -> str:
    """The 4.17 script name of a plugin: its ``CTDB_SCRIPT``, or ``NN.name``.

    :raises ValueError: ``CTDB_SCRIPT`` is not ``NN.name`` with ``NN`` = ``CTDB_ORDER``.
    """
    order = plugin_order(plugin)
    explicit = getattr(plugin, "CTDB_SCRIPT", None)
    if explicit is None:
        return f"{order:02d}.{name}"
    m = _SCRIPT_RE.match(str(explicit))
    if m is None or int(m.group(1)) != order:
        raise ValueError(f"CTDB_SCRIPT must be 'NN.name' with NN = CTDB_ORDER ({order:02d}), got {explicit!r}")
    return str(explicit)


def default_enabled(plugin: object) -> bool:
    return getattr(plugin, "CTDB_ENABLED_BY_DEFAULT", False) is True


@attrs.frozen
class Enablement:
    """Whether one plugin runs on this node, and why.

    :ivar name: the plugin name.
    :ivar script: its 4.17 script name.
    :ivar enabled: it runs.
    :ivar source: what decided it (the state file, a config file:line, "default").
    """

    name: str
    script: str
    enabled: bool
    source: str


class EnableState:
    """The per-node state files in ``$CTDB_BASE/events/legacy``."""

    def __init__(self, events_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(events_dir)

    def path(self, script: str) -> Path:
        return self.dir / f"{script}{STATE_SUFFIX}"

    def read_all(self) -> dict[str, bool]:
        """Script name → the state the commands left (absent: the commands never ran)."""
        found: dict[str, bool] = {}
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return found
        for entry in entries:
            if not entry.name.endswith(STATE_SUFFIX):
                continue
            try:
                word = Path(entry.path).read_text(encoding="utf-8", errors="replace").split()
            except OSError:
                continue
            # Anything but "disabled" counts as enabled: the file's existence is the
            # administrator's enable, as a 4.17 symlink is.
            found[entry.name[: -len(STATE_SUFFIX)]] = not (word and word[0] == "disabled")
        return found

    def write(self, script: str, enabled: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(script)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(("enabled" if enabled else "disabled") + "\n", encoding="utf-8")
        os.replace(tmp, path)


def decide(
    plugins: Mapping[str, object],
    state: Mapping[str, bool],
    configured: Mapping[str, tuple[bool, str]],
) -> dict[str, Enablement]:
    """Plugin name → :class:`Enablement`, by the rules of this module.

    :param plugins: the loaded event plugins by name.
    :param state: :meth:`EnableState.read_all`.
    :param configured: plugin name → (enabled, where) from the configuration files.
    """
    out: dict[str, Enablement] = {}
    for name, plugin in plugins.items():
        script = script_name(name, plugin)
        if script in state:
            out[name] = Enablement(name, script, state[script], f"ctdb event script {'enable' if state[script] else 'disable'}")
        elif name in configured:
            enabled, where = configured[name]
            out[name] = Enablement(name, script, enabled, where)
        else:
            out[name] = Enablement(name, script, default_enabled(plugin), "default")
    return out


def find_plugin(plugins: Mapping[str, object], wanted: str) -> str | None:
    """The plugin name for ``50.samba`` or ``samba``; None if no plugin has it."""
    for name, plugin in plugins.items():
        if wanted in (name, script_name(name, plugin)):
            return name
    return None


def format_script_list(enablements: Iterable[Enablement]) -> str:
    """``ctdb event script list legacy``: 4.17's ``"%c %s"`` lines in script-name order."""
    return "".join(f"{'*' if e.enabled else ' '} {e.script}\n" for e in sorted(enablements, key=lambda e: e.script))


def script_command(
    plugins: Mapping[str, object], state: EnableState, component: str, script: str, enable: bool
) -> tuple[str, int]:
    """``ctdb event script enable|disable COMPONENT SCRIPT``: (output, exit code).

    4.17's messages: an unknown script prints "Script X does not exist in legacy"
    (ENOENT); an unknown component the same for that component.
    """
    if component != "legacy":
        return f"Script {script} does not exist in {component}\n", errno.ENOENT
    name = find_plugin(plugins, script)
    if name is None:
        return f"Script {script} does not exist in {component}\n", errno.ENOENT
    try:
        state.write(script_name(name, plugins[name]), enable)
    except OSError as exc:
        return f"Failed to {'enable' if enable else 'disable'} {script}: {exc.strerror}\n", errno.EIO
    return "", 0


def read_configured(run_dir: str) -> dict[str, tuple[bool, str]]:
    """What :func:`write_configured` left; empty if ctdbd never ran here."""
    try:
        with open(os.path.join(run_dir, CONFIGURED_FILE), encoding="utf-8") as f:
            data = json.load(f)
        return {name: (bool(v[0]), str(v[1])) for name, v in data.items()}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}


def write_configured(run_dir: str, configured: Mapping[str, tuple[bool, str]]) -> None:
    os.makedirs(run_dir, exist_ok=True)
    tmp = os.path.join(run_dir, f".{CONFIGURED_FILE}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({name: list(v) for name, v in configured.items()}, f)
    os.replace(tmp, os.path.join(run_dir, CONFIGURED_FILE))
