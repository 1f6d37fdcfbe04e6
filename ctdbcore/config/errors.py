"""Configuration errors that always say where they come from.

Every parser in this package collects all problems of one file and raises them
together as :class:`ConfigErrors`, so an administrator fixes a file in one pass
instead of restarting ctdbd once per typo.
"""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """One problem in one configuration input, ``path:line: message``."""

    def __init__(self, path: str | None, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigError({self.path!r}, {self.line!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigError):
            return NotImplemented
        return (self.path, self.line, self.message) == (other.path, other.line, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.line, self.message))


class ConfigErrors(Exception):
    """All problems found, one per line of ``str()``."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors: list[ConfigError] = list(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ErrorCollector:
    """Gathers errors while a file is parsed; :meth:`raise_if_any` ends the parse.

    Shared by the parsers so that each one reports "all errors, then stop" the same way.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.errors: list[ConfigError] = []

    def add(self, line: int | None, message: str) -> None:
        self.errors.append(ConfigError(self.path, line, message))

    def extend(self, errors: Iterable[ConfigError]) -> None:
        self.errors.extend(errors)

    def raise_if_any(self) -> None:
        if self.errors:
            # In file order, whatever order the checks ran in; errors without
            # a line (whole-file problems) first.
            self.errors.sort(key=lambda e: -1 if e.line is None else e.line)
            raise ConfigErrors(self.errors)
