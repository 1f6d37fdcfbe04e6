"""What the client library raises and returns for a control, shared by the async client
and its blocking facade (both raise exactly these), and its timeout convention."""

from __future__ import annotations

import errno as errno_mod
import os
from typing import Any

import attrs

from ctdbcore.protocol.constants import Opcode

DEFAULT_TIMEOUT = -1.0
"""``timeout=DEFAULT_TIMEOUT`` means the client's own timeout; ``None`` waits forever."""


class ConnectError(OSError):
    """The daemon's socket could not be connected. ``str()`` is 4.17's log line."""

    def __init__(self, path: str, err: int) -> None:
        super().__init__(err, os.strerror(err), path)
        self.path = path

    def __str__(self) -> str:
        return f"connect() failed, errno={self.errno}"


class ConnectionClosed(ConnectionError):
    """ctdbd closed the socket (4.17: "connection to daemon closed, exiting"), or the
    client was closed."""


@attrs.frozen
class ControlReply:
    """A control's answer as it came: ``status`` (controls such as GET_PNN answer in
    it), the payload and the daemon's error message, if any."""

    status: int
    data: bytes = b""
    errmsg: str | None = None


class ControlError(Exception):
    """A control answered with a non-zero status (or not at all, see ControlTimeout)."""

    def __init__(self, opcode: int, status: int, errmsg: str | None = None) -> None:
        self.opcode = opcode
        self.status = status
        self.errmsg = errmsg
        try:
            name = Opcode(opcode).name
        except ValueError:
            name = str(opcode)
        text = f"Control {name} failed, status={status}"
        if errmsg:
            text += f", {errmsg}"
        super().__init__(text)


class ControlTimeout(ControlError, TimeoutError):
    """No answer within the timeout (4.17's ETIMEDOUT)."""

    def __init__(self, opcode: int) -> None:
        super().__init__(opcode, -errno_mod.ETIMEDOUT, "timed out")


class DbError(Exception):
    """A database operation failed: a call the daemon refused, a record that never
    arrived, a traverse that stopped, a transaction lost to a recovery."""


def errmsg(reply: Any) -> str | None:
    """The error text of a REPLY_CONTROL (or REPLY_ERROR), None when empty."""
    msg = getattr(reply, "errmsg", None)
    if msg is None:
        msg = getattr(reply, "msg", None)
    if msg is None or msg == b"" or msg == "":
        return None
    if isinstance(msg, bytes):
        msg = msg.rstrip(b"\0").decode("utf-8", "replace")
    return msg


def control_reply(reply: Any) -> ControlReply:
    """The :class:`ControlReply` of a reply packet."""
    return ControlReply(int(reply.status), bytes(getattr(reply, "data", b"")), errmsg(reply))
