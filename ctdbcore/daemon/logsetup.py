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
# The protocol's GET_DEBUG/SET_DEBUG carry Samba's DBGLVL numbers (lib/util/debug.h);
# 4.17 also takes them in its configuration (2 is WARNING, 4 NOTICE, 6-9 INFO).


def wire_level(name: str | int) -> int:
    """The DBGLVL number of a configured level: a name, or a number kept as it is
    (4.17 debug_level_parse)."""
    from ctdbcore.config.ctdbconf import log_level_number

    return log_level_number(str(name).upper())


def python_level(wire: int) -> int:
    """The logging threshold for a DBGLVL number: messages of level <= wire are shown."""
    if wire >= 10:
        return logging.DEBUG
    if wire >= 5:
        return logging.INFO
    if wire >= 3:
        return NOTICE
    if wire >= 1:
        return logging.WARNING
    return logging.ERROR


def level_from_name(name: str | int) -> int:
    return python_level(wire_level(name))


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
