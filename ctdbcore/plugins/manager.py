"""Finding, loading, ordering and listing plugins.

Entry-point groups, one per kind of plugin:

* ``ctdb.services``: event plugins (many; run in ``CTDB_ORDER`` order);
* ``ctdb.ipalloc``, ``ctdb.transport``, ``ctdb.cluster_mutex``: one implementation is
  selected by its configured name with :func:`load_named`, imported only then.

Loading follows pytest/conda: built-ins first, then entry points, then
``check_pending()``. A plugin the user *named* (``only=[…]``, ``ctdbd --plugins a,b``)
must load or :class:`PluginLoadError` is raised; an auto-discovered plugin that fails
to load is logged, skipped and recorded (``list_plugins`` shows the error).
``CTDB_DISABLE_PLUGIN_AUTOLOAD=1`` turns auto-discovery off (named plugins still load);
``CTDB_TRACE_PLUGINS=1`` logs every hook call.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pluggy

from ctdbcore import hookspecs
from ctdbcore.hookspecs import PROJECT_NAME

log = logging.getLogger("ctdb.plugins")

GROUP_SERVICES = "ctdb.services"
GROUP_IPALLOC = "ctdb.ipalloc"
GROUP_TRANSPORT = "ctdb.transport"
GROUP_CLUSTER_MUTEX = "ctdb.cluster_mutex"
#: Every entry-point group ctdbd knows, in listing order.
GROUPS: tuple[str, ...] = (GROUP_SERVICES, GROUP_IPALLOC, GROUP_TRANSPORT, GROUP_CLUSTER_MUTEX)

#: What each group is called in messages.
KIND_LABELS: dict[str, str] = {
    GROUP_SERVICES: "service plugin",
    GROUP_IPALLOC: "IP allocation policy",
    GROUP_TRANSPORT: "transport",
    GROUP_CLUSTER_MUTEX: "cluster mutex",
}

#: Built-in plugins registered before entry points, per group: (name, "module:attr").
#: There are no built-in event plugins yet. (Built-in transports and mutexes are entry
#: points of the ctdb-core distribution itself, see pyproject.toml.)
BUILTIN_PLUGINS: dict[str, tuple[tuple[str, str], ...]] = {GROUP_SERVICES: ()}

#: Distribution to suggest in "is the plugin installed?" errors, per (group, name).
KNOWN_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    (GROUP_SERVICES, "example"): "ctdb-example-plugin",
    (GROUP_SERVICES, "samba"): "ctdb-samba",
    (GROUP_SERVICES, "netbios"): "ctdb-samba",
    (GROUP_SERVICES, "nfs"): "ctdb-nfs",
    (GROUP_SERVICES, "nfs_pre"): "ctdb-nfs",
    (GROUP_SERVICES, "vsftpd"): "ctdb-vsftpd",
    (GROUP_SERVICES, "httpd"): "ctdb-httpd",
    (GROUP_SERVICES, "winbind"): "ctdb-winbind",
    ("ctdb.ipalloc", "lcp2"): "ctdb-ipalloc",
    ("ctdb.ipalloc", "deterministic"): "ctdb-ipalloc",
    ("ctdb.ipalloc", "nondeterministic"): "ctdb-ipalloc",
}

#: ``CTDB_ORDER`` of an event plugin that declares none (4.17 scripts are NN.name).
DEFAULT_ORDER = 50

ENV_DISABLE_AUTOLOAD = "CTDB_DISABLE_PLUGIN_AUTOLOAD"
ENV_TRACE = "CTDB_TRACE_PLUGINS"
_TRUE = {"1", "yes", "true", "on"}


class PluginLoadError(Exception):
    """A plugin that was asked for by name could not be found or loaded."""

    def __init__(self, message: str, *, name: str, group: str, cause: BaseException | None = None):
        super().__init__(message)
        self.name = name
        self.group = group
        self.cause = cause


@attrs.frozen
class PluginInfo:
    """One line of ``ctdbd --plugins`` (JSON-able with cattrs).

    :ivar name: the entry-point (registration) name.
    :ivar distribution: the distribution that provides it (None for built-ins and
        plugins registered at run time).
    :ivar version: the distribution's version.
    :ivar kind: the entry-point group, e.g. ``"ctdb.services"``.
    :ivar hooks: the hooks it implements, sorted.
    :ivar enabled: loaded and active (for the single-implementation groups: loadable).
    :ivar error: why it is not enabled, if it failed to load.
    :ivar order: ``CTDB_ORDER`` (event plugins only).
    """

    name: str
    distribution: str | None
    version: str | None
    kind: str
    hooks: tuple[str, ...] = ()
    enabled: bool = True
    error: str | None = None
    order: int | None = None


@attrs.define
class _Record:
    name: str
    group: str
    distribution: str | None = None
    version: str | None = None
    plugin: Any = None
    enabled: bool = False
    error: str | None = None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def plugin_order(plugin: object) -> int:
    """Return the ``CTDB_ORDER`` of an event plugin (module or class attribute).

    :raises ValueError: if it is not an int in 0..99 (4.17's two-digit ``NN.`` prefix).
    """
    value = getattr(plugin, "CTDB_ORDER", DEFAULT_ORDER)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
        raise ValueError(f"CTDB_ORDER must be an int in 0..99, got {value!r}")
    return value


def _safe_order(plugin: object) -> int:
    try:
        return plugin_order(plugin)
    except ValueError:
        return DEFAULT_ORDER


class CtdbPluginManager(pluggy.PluginManager):
    """A pluggy manager with ctdbd's hookspecs plus a record of what was loaded.

    Build it with :func:`make_plugin_manager`.
    """

    def __init__(self, groups: Sequence[str] = (GROUP_SERVICES,)) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.groups: tuple[str, ...] = tuple(groups)
        self.records: list[_Record] = []

    # -- registration -----------------------------------------------------------
    def register_checked(self, plugin: object, name: str) -> str:
        """Register ``plugin`` after validating its order, and reject unknown hooks.

        Unlike :meth:`check_pending`, this only looks at this plugin, so one bad
        auto-discovered plugin does not break loading of the others.
        """
        plugin_order(plugin)
        registered = self.register(plugin, name=name)
        if registered is None:  # blocked
            raise ValueError(f"plugin {name!r} is blocked")
        try:
            for caller in self.get_hookcallers(plugin) or ():
                if caller.spec is not None:
                    continue
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin and not impl.optionalhook:
                        raise pluggy.PluginValidationError(
                            plugin, f"unknown hook {caller.name!r} in plugin {name!r}"
                        )
        except Exception:
            self.unregister(plugin)
            raise
        return registered

    def record_for(self, plugin: object) -> _Record | None:
        for rec in self.records:
            if rec.plugin is plugin:
                return rec
        return None

    # -- ordering -----------------------------------------------------------------
    def ordered_hookimpls(self, hook_name: str) -> list[pluggy.HookImpl]:
        """The implementations of ``hook_name`` in run order: ``(CTDB_ORDER, name)``.

        Wrappers are left out: an event run calls plain implementations only.
        """
        caller = getattr(self.hook, hook_name)
        impls = [i for i in caller.get_hookimpls() if not (i.wrapper or i.hookwrapper)]
        return sorted(impls, key=lambda i: (_safe_order(i.plugin), i.plugin_name))


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=group))


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    try:
        return dist.metadata["Name"], dist.version
    except Exception:  # broken metadata must not break a listing
        return None, None


def _load_ref(ref: str) -> object:
    module_name, _, attr = ref.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _named_by(ep: importlib.metadata.EntryPoint, only: Iterable[str]) -> str | None:
    dist_name, _ = _dist_of(ep)
    for wanted in only:
        if wanted == ep.name:
            return wanted
        if dist_name is not None and _canonical(wanted) == _canonical(dist_name):
            return wanted
    return None


def _load_entry_point(
    pm: CtdbPluginManager, ep: importlib.metadata.EntryPoint, group: str, *, named: bool
) -> None:
    dist_name, version = _dist_of(ep)
    rec = _Record(name=ep.name, group=group, distribution=dist_name, version=version)
    if pm.has_plugin(ep.name):
        # The same name from a second distribution (or twice on sys.path): first wins.
        log.debug("plugin %r (%s) already registered, skipping %s", ep.name, group, ep.value)
        return
    try:
        plugin = ep.load()
        pm.register_checked(plugin, ep.name)
    except Exception as exc:
        rec.error = _describe(exc)
        pm.records.append(rec)
        if named:
            raise PluginLoadError(
                f"plugin {ep.name!r} (group {group!r}, entry point {ep.value!r}"
                f" from {dist_name or '?'} {version or ''}".rstrip()
                + f") could not be loaded: {rec.error}",
                name=ep.name,
                group=group,
                cause=exc,
            ) from exc
        log.warning(
            "skipping plugin %r (group %s, entry point %s from %s): %s",
            ep.name, group, ep.value, dist_name, rec.error,
        )
        return
    rec.plugin = plugin
    rec.enabled = True
    pm.records.append(rec)


def _trace_hook_calls(pm: CtdbPluginManager) -> None:
    trace_log = logging.getLogger("ctdb.plugins.trace")

    def before(hook_name, impls, kwargs):
        trace_log.info("hook %s -> %s", hook_name, [i.plugin_name for i in impls])

    def after(outcome, hook_name, impls, kwargs):
        if outcome.exception is not None:
            trace_log.info("hook %s raised %s", hook_name, _describe(outcome.exception))
        else:
            trace_log.info("hook %s returned %r", hook_name, outcome.get_result())

    pm.add_hookcall_monitoring(before, after)


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    only: Sequence[str] | None = None,
    groups: Sequence[str] = (GROUP_SERVICES,),
) -> CtdbPluginManager:
    """Build a plugin manager: built-ins, then entry points, then ``check_pending()``.

    :param load_entrypoints: False = built-ins only (``ctdbd --no-plugins``).
    :param only: allow-list of plugin names (entry-point names or distribution names),
        ``ctdbd --plugins a,b``. Every name must be found and must load, else
        :class:`PluginLoadError`. Entry points not on the list are recorded as
        disabled. ``None`` = auto-discover everything (unless
        ``CTDB_DISABLE_PLUGIN_AUTOLOAD=1``).
    :param groups: entry-point groups to load into the manager.
    :raises PluginLoadError: a named plugin is missing or fails to load.
    """
    pm = CtdbPluginManager(groups)
    for group in groups:
        for name, ref in BUILTIN_PLUGINS.get(group, ()):
            plugin = _load_ref(ref)  # a broken built-in is a bug: let it raise
            pm.register_checked(plugin, name)
            pm.records.append(
                _Record(name=name, group=group, distribution=None, plugin=plugin, enabled=True)
            )

    autoload = os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() not in _TRUE
    if load_entrypoints:
        matched: set[str] = set()
        for group in groups:
            for ep in _entry_points(group):
                if only is not None:
                    wanted = _named_by(ep, only)
                    if wanted is None:
                        _record_unloaded(pm, ep, group)
                        continue
                    matched.add(wanted)
                    _load_entry_point(pm, ep, group, named=True)
                elif autoload:
                    _load_entry_point(pm, ep, group, named=False)
                else:
                    _record_unloaded(pm, ep, group)
        for wanted in only or ():
            if wanted not in matched and not _known_anywhere(wanted):
                group = groups[0] if groups else GROUP_SERVICES
                raise PluginLoadError(
                    f"plugin {wanted!r} was named but can't be found, is the plugin "
                    f"installed? (pip install "
                    f"{KNOWN_DISTRIBUTIONS.get((group, wanted), 'ctdb-' + wanted)}); "
                    f"searched {', '.join(groups)}",
                    name=wanted,
                    group=group,
                )
    pm.check_pending()
    if os.environ.get(ENV_TRACE, "").strip().lower() in _TRUE:
        _trace_hook_calls(pm)
    return pm


def _record_unloaded(pm: CtdbPluginManager, ep: importlib.metadata.EntryPoint, group: str) -> None:
    if any(r.name == ep.name and r.group == group for r in pm.records):
        return
    dist_name, version = _dist_of(ep)
    pm.records.append(_Record(name=ep.name, group=group, distribution=dist_name, version=version))


def _known_anywhere(wanted: str) -> bool:
    """Whether ``wanted`` names a plugin in any ctdb group (e.g. a transport)."""
    return any(_named_by(ep, [wanted]) for group in GROUPS for ep in _entry_points(group))


def load_named(group: str, name: str) -> Any:
    """Load the implementation called ``name`` from a single-implementation group.

    Only that entry point is imported. Use it for the configured transport
    (``ctdb.transport``), cluster mutex (``ctdb.cluster_mutex``) and IP allocation
    policy (``ctdb.ipalloc``).

    :return: the object the entry point refers to.
    :raises PluginLoadError: no such entry point ("can't be found, is the plugin
        installed?") or it failed to import.
    """
    kind = KIND_LABELS.get(group, group)
    eps = [ep for ep in _entry_points(group) if ep.name == name]
    if not eps:
        available = sorted({ep.name for ep in _entry_points(group)})
        dist = KNOWN_DISTRIBUTIONS.get((group, name), f"ctdb-{name}")
        raise PluginLoadError(
            f"The {kind} {name!r} can't be found, is the plugin installed? "
            f"(pip install {dist}); available in {group}: {', '.join(available) or 'none'}",
            name=name,
            group=group,
        )
    ep = eps[0]
    try:
        return ep.load()
    except Exception as exc:
        dist_name, version = _dist_of(ep)
        raise PluginLoadError(
            f"The {kind} {name!r} (group {group!r}, entry point {ep.value!r} from "
            f"{dist_name or '?'}) could not be loaded: {_describe(exc)}",
            name=name,
            group=group,
            cause=exc,
        ) from exc


def _hooks_of(pm: CtdbPluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or ()))


def list_plugins(pm: CtdbPluginManager, *, groups: Sequence[str] | None = None) -> list[PluginInfo]:
    """Describe every plugin for ``ctdbd --plugins`` / ``ctdb plugins``.

    Groups the manager loaded come from its records (including plugins skipped
    because of an error or an allow-list, and plugins registered at run time).
    Other groups in ``groups`` (default: all of :data:`GROUPS`) are probed entry point
    by entry point: a module that is missing or broken shows ``enabled=False`` with the
    error instead of breaking the listing.
    """
    groups = GROUPS if groups is None else tuple(groups)
    out: list[PluginInfo] = []
    seen: set[int] = set()
    for rec in pm.records:
        if rec.group not in groups:
            continue
        hooks: tuple[str, ...] = ()
        order = None
        if rec.plugin is not None and pm.is_registered(rec.plugin):
            seen.add(id(rec.plugin))
            hooks = _hooks_of(pm, rec.plugin)
            if rec.group == GROUP_SERVICES:
                order = _safe_order(rec.plugin)
        out.append(
            PluginInfo(
                name=rec.name,
                distribution=rec.distribution,
                version=rec.version,
                kind=rec.group,
                hooks=hooks,
                enabled=rec.enabled and rec.plugin is not None and pm.is_registered(rec.plugin),
                error=rec.error,
                order=order,
            )
        )
    if GROUP_SERVICES in groups and GROUP_SERVICES in pm.groups:
        for name, plugin in pm.list_name_plugin():
            if plugin is None or id(plugin) in seen:
                continue
            hooks = _hooks_of(pm, plugin)
            out.append(
                PluginInfo(name=name, distribution=None, version=None, kind=GROUP_SERVICES,
                           hooks=hooks, enabled=True, order=_safe_order(plugin))
            )
    for group in groups:
        if group in pm.groups:
            continue
        for ep in _entry_points(group):
            dist_name, version = _dist_of(ep)
            try:
                ep.load()
            except Exception as exc:
                out.append(PluginInfo(name=ep.name, distribution=dist_name, version=version,
                                      kind=group, enabled=False, error=_describe(exc)))
            else:
                out.append(PluginInfo(name=ep.name, distribution=dist_name, version=version,
                                      kind=group, enabled=True))
    rank = {g: i for i, g in enumerate(GROUPS)}
    out.sort(key=lambda p: (rank.get(p.kind, len(rank)), p.order if p.order is not None else DEFAULT_ORDER, p.name))
    return out
