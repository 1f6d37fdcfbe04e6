"""Logging as 4.17 does it: levels ERROR..DEBUG (NOTICE included), to a file,
syslog or stderr, one line per message with a microsecond timestamp."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

LEVELS = {
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": NOTICE,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}
# 4.17 also takes the old numeric debug levels.
NUMERIC = {0: "ERROR", 1: "WARNING", 2: "NOTICE", 3: "INFO", 4: "DEBUG"}
# The protocol's GET_DEBUG/SET_DEBUG carry these numbers (DEBUG_ERR=0 ... DEBUG_DEBUG=10).
WIRE_LEVELS = {"ERROR": 0, "WARNING": 1, "NOTICE": 2, "INFO": 3, "DEBUG": 10}


def level_from_name(name: str | int) -> int:
    if isinstance(name, int) or str(name).isdigit():
        n = int(name)
        return LEVELS[NUMERIC.get(min(n, 4), "DEBUG")]
    return LEVELS[str(name).upper()]


class _Formatter(logging.Formatter):
    def __init__(self, progname: str) -> None:
        super().__init__()
        self.progname = progname

    def format(self, record: logging.LogRecord) -> str:
        t = record.created
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1e6):06d}"
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return f"{stamp} {self.progname}[{os.getpid()}]: {msg}"


def setup_logging(location: str, level: str | int, progname: str = "ctdbd") -> logging.Logger:
    """Configure the "ctdb" logger from a 4.17 `[logging] location` value."""
    logger = logging.getLogger("ctdb")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if location.startswith("file:"):
        path = location[len("file:"):]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path)
        handler.setFormatter(_Formatter(progname))
    elif location.startswith("syslog"):
        handler = logging.handlers.SysLogHandler(address="/dev/log" if os.path.exists("/dev/log") else ("localhost", 514))
        handler.setFormatter(logging.Formatter(f"{progname}[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter(progname))
    logger.addHandler(handler)
    logger.setLevel(level_from_name(level))
    logger.propagate = False
    return logger
