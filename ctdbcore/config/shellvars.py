"""Shell-variable files: the seed's sysconfig, 4.17's ``script.options`` and
``events/legacy/NN.name.options``.

They are shell, but only ``[export] KEY=value`` assignments (quotes and trailing
``# comments`` allowed) are understood; no expansion is done, and anything else is
an error at its line.
"""

from __future__ import annotations

import re
import shlex

from ctdbcore.config.errors import ConfigErrors, ErrorCollector

_ASSIGN_RE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_assignments(text: str, errors: ErrorCollector) -> dict[str, tuple[str, int]]:
    """Variable → (value, line); later lines win, as in sh. Problems go to ``errors``."""
    found: dict[str, tuple[str, int]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGN_RE.match(line)
        if not m:
            errors.add(lineno, f"syntax error: expected KEY=value, got {line!r}")
            continue
        try:
            words = shlex.split(m.group(2), comments=True, posix=True)
        except ValueError as exc:
            errors.add(lineno, f"syntax error in value of {m.group(1)}: {exc}")
            continue
        if len(words) > 1:
            errors.add(lineno, f"value of {m.group(1)} has unquoted spaces; quote it")
            continue
        found[m.group(1)] = (words[0] if words else "", lineno)
    return found


def read_assignments_file(path: str) -> dict[str, tuple[str, int]]:
    """:func:`read_assignments` of a file; :class:`ConfigErrors` for every problem."""
    errors = ErrorCollector(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        errors.add(None, f"cannot read: {exc}")
        raise ConfigErrors(errors.errors) from exc
    found = read_assignments(text, errors)
    errors.raise_if_any()
    return found
