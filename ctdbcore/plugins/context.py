"""The context object every event hook may ask for (``ctx``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class EventContext:
    """What an event plugin knows about the node and the event being run.

    :ivar pnn: the physical node number of this node.
    :ivar event: the event name, e.g. ``"monitor"`` or ``"takeip"``.
    :ivar config: the node's configuration object (as loaded by ``ctdbcore.config``);
        plugins read their own section from it.
    :ivar logger: a logger; during a run it is a child logger named after the plugin
        (``ctdb.plugins.<name>``).
    :ivar rundir: the node's run directory (``/run/ctdb``, or ``$CTDB_BASE/run`` with
        ``CTDB_TEST_MODE``); plugins may keep small state files there.
    :ivar test_mode: ``CTDB_TEST_MODE`` is set: several nodes share one machine (and
        often one network namespace), so public addresses are bookkeeping only, as in
        4.17; a plugin must not add or remove addresses, send ARPs or kill connections.
    """

    pnn: int
    event: str
    config: Any = None
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("ctdb.plugins"))
    rundir: Path = attrs.field(default=Path("/run/ctdb"), converter=Path)
    test_mode: bool = False

    def for_plugin(self, name: str) -> EventContext:
        """Return a copy whose logger is named after plugin ``name``."""
        return attrs.evolve(self, logger=self.logger.getChild(name))

    def for_event(self, event: str) -> EventContext:
        """Return a copy for another event."""
        return attrs.evolve(self, event=event)
