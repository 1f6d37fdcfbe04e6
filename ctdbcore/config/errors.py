"""Configuration errors that always say where: file and line."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, path: str | None, line: int | None, message: str) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = self.path or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}"


class ConfigErrors(Exception):
    """All the errors found in one or more files, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class Collector:
    """Gathers errors while a file is parsed; raise_if_any() at the end."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.errors: list[ConfigError] = []

    def add(self, line: int | None, message: str) -> None:
        self.errors.append(ConfigError(self.path, line, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)
