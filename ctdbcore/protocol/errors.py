"""Decode errors. All are ``ValueError``s so callers that only care about "bad input" can say so."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Bytes that are not valid CTDB 4.17 wire format."""


class BadMagic(ProtocolError):
    """Header magic is not CTDB_MAGIC."""


class BadVersion(ProtocolError):
    """Header version is not CTDB_PROTOCOL."""


class BadLength(ProtocolError):
    """Header length is < 32, misaligned on a strict stream, or above the decoder's limit."""


class Truncated(ProtocolError):
    """A buffer is shorter than its own fields say it is."""


class UnknownOperation(ProtocolError):
    """Header operation is not one of ``Operation``."""


class BadPayload(ProtocolError):
    """Data that has the right size but an impossible value (bool not 0/1, unknown family...)."""
