"""Does smbd answer? An SMB2 NEGOTIATE over TCP, and any reply within the timeout.

4.17 only checks that something listens on the smb ports (``ctdb checktcpport``), so
a hung smbd (stopped, or stuck in a lock) keeps a node healthy while every client
times out. A listening socket accepts connections in the kernel even when smbd does
not run, so the probe asks a question that only a running smbd answers.
"""

from __future__ import annotations

import socket
import struct
import time

# SMB2 header (64 bytes) + NEGOTIATE request offering 2.0.2 and 2.1.
_HEADER = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ16s", 64, 0, 0, 0, 0, 0, 0, 0, 0xFEFF, 0, 0, b"\0" * 16)
_NEGOTIATE = struct.pack("<HHHHI16sQ", 36, 2, 1, 0, 0, b"ctdb-py-probe\0\0\0", 0) + struct.pack("<HH", 0x0202, 0x0210)
REQUEST = struct.pack(">I", len(_HEADER) + len(_NEGOTIATE)) + _HEADER + _NEGOTIATE


def answers(host: str, port: int, timeout: float = 3.0) -> str | None:
    """None if smbd at host:port answers a NEGOTIATE, else why not."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(REQUEST)
            s.settimeout(max(0.1, deadline - time.monotonic()))
            head = s.recv(8)
    except socket.timeout:
        return f"no answer on TCP port {port} within {timeout:g} s"
    except OSError as exc:
        return f"TCP port {port}: {exc.strerror or exc}"
    if len(head) < 8:
        return f"TCP port {port}: connection closed without an answer"
    if head[4:8] not in (b"\xfeSMB", b"\xffSMB"):
        return f"TCP port {port}: not an SMB answer"
    return None
