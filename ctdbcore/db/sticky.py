"""Sticky records of one database on one node (4.17 server/ctdb_call.c, the
``sticky_records`` tree): sans-IO, time is passed in.

On a database with the STICKY flag, a call that reaches this node as data master after
``HopcountMakeSticky`` or more redirects marks its record sticky here for
``StickyDuration`` seconds. Whenever a sticky record then becomes this node's (it
migrated back), it is pinned down for ``StickyPindown`` milliseconds: calls from other
nodes for it wait until the pin-down ends, so a hot record stays long enough to be used
instead of bouncing between nodes.
"""

from __future__ import annotations


class StickyRecords:
    def __init__(self) -> None:
        self._sticky_until: dict[bytes, float] = {}
        self._pinned_until: dict[bytes, float] = {}

    def make_sticky(self, key: bytes, now: float, duration: float) -> bool:
        """Mark ``key`` sticky (4.17 keeps an existing entry and its timer); True when new."""
        if self.is_sticky(key, now):
            return False
        self._sticky_until[key] = now + duration
        return True

    def is_sticky(self, key: bytes, now: float) -> bool:
        until = self._sticky_until.get(key)
        if until is None:
            return False
        if now >= until:
            # An expired sticky record takes its pin-down with it.
            del self._sticky_until[key]
            self._pinned_until.pop(key, None)
            return False
        return True

    def pin_down(self, key: bytes, now: float, pindown: float) -> float | None:
        """The record just became this node's: pin it when sticky and not pinned yet.
        Returns the end of the new pin-down, or None when nothing was pinned."""
        if not self.is_sticky(key, now) or self.pinned_until(key, now) is not None:
            return None
        self._pinned_until[key] = now + pindown
        return now + pindown

    def pinned_until(self, key: bytes, now: float) -> float | None:
        """When ``key``'s pin-down ends, or None when it is not pinned down."""
        until = self._pinned_until.get(key)
        if until is None:
            return None
        if now >= until or not self.is_sticky(key, now):
            self._pinned_until.pop(key, None)
            return None
        return until

    def unpin(self, key: bytes) -> None:
        self._pinned_until.pop(key, None)
