"""What every service plugin needs: running commands, starting and stopping a
service, 4.17's port, directory and failure-counter checks, and stack traces.

These are the Python forms of the shell helpers 4.17's scripts share
(``$CTDB_BASE/functions``): ``service``/``nice_service``, ``ctdb_check_tcp_ports``
(which runs ``ctdb checktcpport``), ``ctdb_check_directories``, ``ctdb_counter_*``
and ``program_stack_traces``. Every command goes through a :class:`CommandRunner`
(``ctx.runner`` in a hook), so tests record what a plugin would run
(:class:`ctdbcore.testing.RecordingRunner`) instead of running it.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

import attrs

#: What a command that cannot be started exits with, as a shell does.
NOT_FOUND = 127
TIMED_OUT = 124


@attrs.frozen
class Completed:
    """A finished command: its argv, exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, as a script's captured output."""
        return (self.stdout + self.stderr).rstrip("\n")


class CommandRunner(Protocol):
    """Runs one command to completion (``ctx.runner``)."""

    def run(self, argv: Sequence[str], *, timeout: float | None = None,
            input: str | None = None) -> Completed: ...


class SubprocessRunner:
    """The real runner: a child process, its output captured, a timeout enforced.

    A missing program is exit status 127 with a "command not found" message, and a
    timeout is 124 (coreutils ``timeout``), so a plugin handles both like any failure.
    """

    def run(self, argv: Sequence[str], *, timeout: float | None = None,
            input: str | None = None) -> Completed:
        args = tuple(argv)
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL,
                                  errors="replace", start_new_session=True)
        except FileNotFoundError:
            return Completed(args, NOT_FOUND, "", f"{args[0]}: command not found\n")
        except PermissionError as exc:
            return Completed(args, 126, "", f"{args[0]}: {exc.strerror}\n")
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return Completed(args, TIMED_OUT, out, f"{args[0]}: timed out after {timeout:g} s\n")
        return Completed(args, proc.returncode, proc.stdout, proc.stderr)


def shell(command: str) -> tuple[str, ...]:
    """argv that runs a configured command line through ``sh -c``, as 4.17's
    ``service_start_cmd`` lines are run."""
    return ("/bin/sh", "-c", command)


def missing_program(program: str, package: str) -> str | None:
    """None if ``program`` is installed, else one clear line naming the package."""
    if os.path.isabs(program):
        if os.access(program, os.X_OK):
            return None
    elif shutil.which(program) is not None:
        return None
    return f"ERROR: {program} is not installed (apt-get install {package})"


InitStyle = Literal["systemd", "sysv", "service"]


def init_style(init_dir: str = "/etc/init.d") -> InitStyle:
    """How services are started here: systemd when it is PID 1 (``/run/systemd/system``,
    the test sd_booted() makes), else SysV scripts, else the ``service`` command."""
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    if os.path.isdir(init_dir):
        return "sysv"
    return "service"


@attrs.define
class Service:
    """Start, stop and restart one system service.

    :ivar unit: the service's name for the init system (``smbd``, ``apache2``).
    :ivar start_cmd: if set, a shell command line that starts it, used instead of the
        init system (the plugins' ``start command`` settings; the tests use them).
    :ivar stop_cmd: likewise for stopping.
    :ivar runner: what runs the commands.
    :ivar nice: start it with ``nice`` (4.17's ``nice_service``).
    """

    unit: str
    runner: CommandRunner = attrs.field(factory=SubprocessRunner)
    start_cmd: str | None = None
    stop_cmd: str | None = None
    nice: bool = False
    init_dir: str = "/etc/init.d"

    def _init_argv(self, action: str) -> tuple[str, ...]:
        style = init_style(self.init_dir)
        if style == "systemd":
            return ("systemctl", action, self.unit)
        script = os.path.join(self.init_dir, self.unit)
        if style == "sysv" and os.path.exists(script):
            return (script, action)
        return ("service", self.unit, action)

    def _argv(self, action: Literal["start", "stop"]) -> tuple[str, ...]:
        explicit = self.start_cmd if action == "start" else self.stop_cmd
        argv = shell(explicit) if explicit else self._init_argv(action)
        if action == "start" and self.nice:
            argv = ("nice", *argv)
        return argv

    def _run(self, action: Literal["start", "stop"], timeout: float | None) -> Completed:
        explicit = self.start_cmd if action == "start" else self.stop_cmd
        if not explicit and not self.unit:
            return Completed((), 0)  # 4.17's _service: no service name, nothing to do
        return self.runner.run(self._argv(action), timeout=timeout)

    def start(self, timeout: float | None = 30) -> Completed:
        return self._run("start", timeout)

    def stop(self, timeout: float | None = 30) -> Completed:
        return self._run("stop", timeout)

    def restart(self, timeout: float | None = 30) -> Completed:
        """Stop, then start (the result of the start; a failed stop is not fatal,
        as 4.17's ``service X restart`` of a dead service still starts it)."""
        self.stop(timeout)
        return self.start(timeout)


def tcp_port_listening(port: int) -> bool:
    """4.17's ``ctdb checktcpport``: something listens on TCP ``port`` if
    ``0.0.0.0:port`` cannot be bound (EADDRINUSE). In this process's network
    namespace, which for a plugin is its node's."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # TIME_WAIT leftovers must not look like a listener.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port & 0xFFFF))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_tcp_ports(service_name: str, ports: Iterable[int]) -> str | None:
    """``ctdb_check_tcp_ports``: None if every port has a listener, else 4.17's
    message for the first that has none."""
    ports = list(ports)
    if not ports:
        return "INTERNAL ERROR: ctdb_check_tcp_ports - no ports specified"
    for port in ports:
        if not tcp_port_listening(port):
            return f"{service_name} not listening on TCP port {port}"
    return None


def check_directories(service_name: str, paths: Iterable[str]) -> str | None:
    """``ctdb_check_directories``: every path must be a directory; paths with a
    ``%`` (Samba substitutions) are skipped."""
    for path in paths:
        if "%" in path:
            continue
        if not os.path.isdir(os.path.join(path, ".")):
            return f'ERROR: {service_name} directory "{path}" not available'
    return None


class FailureCounter:
    """4.17's ``ctdb_counter_*``: a per-plugin count of consecutive failures, kept
    in the plugin's state directory (one newline per failure, 4.17's format). As in
    4.17, the built-in ``ctdb`` plugin (00.ctdb) empties the state directories when
    ctdbd starts, so counts start from 0 with each daemon run."""

    def __init__(self, state_dir: str | os.PathLike[str], name: str = "") -> None:
        self.path = Path(state_dir) / (f"{name}.failcount" if name else "failcount")

    def get(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def incr(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="ascii") as f:
            f.write("\n")
        return self.get()

    def reset(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")


@attrs.frozen
class FailureVerdict:
    """What to do after a failed check: warn, restart the service, mark unhealthy."""

    count: int
    restart: bool
    unhealthy: bool


def judge_failure(count: int, *, restart_every: int = 0, unhealthy_after: int = 1) -> FailureVerdict:
    """The rule of 4.17's ``nfs-checks.d`` (and, with their numbers, 40.vsftpd and
    41.httpd): restart every ``restart_every`` failures, unhealthy from the
    ``unhealthy_after``-th (0 = never)."""
    restart = restart_every > 0 and count % restart_every == 0
    unhealthy = unhealthy_after > 0 and count >= unhealthy_after
    return FailureVerdict(count=count, restart=restart, unhealthy=unhealthy)


def _netns(pid: int | str, proc: str) -> str | None:
    try:
        return os.readlink(os.path.join(proc, str(pid), "ns", "net"))
    except OSError:
        return None


def pids_of(program: str, proc: str = "/proc", *, same_netns: bool = False) -> list[int]:
    """Pids whose command name is ``program`` (``pidof``), ascending; with
    ``same_netns`` only those in this process's network namespace."""
    want = os.path.basename(program)[:15]  # the kernel keeps 15 characters of comm
    own = _netns("self", proc) if same_netns else None
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "comm"), encoding="utf-8", errors="replace") as f:
                if f.read().rstrip("\n") != want:
                    continue
        except OSError:
            continue
        if same_netns and _netns(entry, proc) != own:
            continue
        found.append(int(entry))
    return sorted(found)


def _ppid(pid: int, proc: str) -> int | None:
    try:
        with open(os.path.join(proc, str(pid), "stat"), encoding="utf-8", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def main_pid(program: str, proc: str = "/proc", *, same_netns: bool = True) -> int | None:
    """The daemon's main process: the lowest pid named ``program`` whose parent is not
    named ``program`` (the workers a daemon forks carry its name too); None if none
    runs. By default only in this process's network namespace (see :func:`pids_of`)."""
    pids = pids_of(program, proc, same_netns=same_netns)
    mine = set(pids)
    for pid in pids:
        if _ppid(pid, proc) not in mine:
            return pid
    return None


def kill_all(program: str, sig: int = signal.SIGKILL, *, same_netns: bool = True) -> list[int]:
    """``killall -9 PROGRAM``: signal every process of that name; the pids signalled.

    Only those in this node's network namespace by default: on a real node that is
    every one (as 4.17's killall), and where several nodes share one machine (the
    namespace cluster of the tests, containers) another node's daemons are left alone.
    """
    hit = []
    for pid in pids_of(program, same_netns=same_netns):
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, sig)
            hit.append(pid)
        except ProcessLookupError:
            pass
    return hit


def stack_traces(program: str, max_count: int = 1, proc: str = "/proc") -> str:
    """``program_stack_traces``: up to ``max_count`` kernel stacks of processes named
    ``program`` (for the log of a service that will not stop)."""
    out = []
    for pid in pids_of(program, proc):
        if len(out) >= max_count:
            break
        try:
            stack = Path(proc, str(pid), "stack").read_text(errors="replace")
        except OSError:
            continue
        if stack:
            out.append(f"Stack trace for {program}[{pid}]:\n{stack.rstrip()}")
    return "\n".join(out)


def read_pidfile(path: str | os.PathLike[str]) -> int | None:
    """The pid in a daemon's pid file, if the file exists and the process lives."""
    try:
        pid = int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def split_words(value: str) -> tuple[str, ...]:
    """A shell-style list setting (``CTDB_SAMBA_CHECK_PORTS="445 139"``)."""
    return tuple(shlex.split(value))


def parse_ports(value: str) -> tuple[int, ...]:
    """A list of TCP ports, space or comma separated."""
    ports = []
    for word in value.replace(",", " ").split():
        if not word.isdigit() or not 0 < int(word) < 65536:
            raise ValueError(f"invalid TCP port {word!r}")
        ports.append(int(word))
    return tuple(ports)


async def wait_for_exit(pid: int) -> None:
    """Return when process ``pid`` exits (at once if it is gone), through a pidfd:
    no polling, and no confusion with a later process that reuses the pid."""
    import anyio

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await anyio.wait_readable(fd)
    finally:
        os.close(fd)


async def wait_until_unresponsive(host: str, port: int, *, interval: float = 1.0,
                                  timeout: float = 2.0, failures: int = 2) -> str:
    """Return a reason once ``host:port`` has refused or not accepted a TCP
    connection ``failures`` times in a row (a hung or dead service), probing every
    ``interval`` seconds."""
    import anyio

    missed = 0
    while True:
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, port)
            await stream.aclose()
            missed = 0
        except (OSError, TimeoutError) as exc:
            missed += 1
            if missed >= failures:
                what = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
                return f"TCP port {port} on {host}: {what} ({missed} probes in a row)"
        await anyio.sleep(interval)


class DeliberateStops:
    """When the plugin itself last stopped its service (a restart, shutdown), kept in
    its state directory, so that its ``ctdb_watch`` does not take that exit for a
    failure."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / "deliberate-stop"

    def mark(self) -> None:
        """Call before stopping the service."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{time.time():.6f}\n")

    def since(self, t: float) -> bool:
        """Whether the service was stopped deliberately at or after ``t`` (time.time())."""
        try:
            return float(self.path.read_text().strip() or 0) >= t
        except (OSError, ValueError):
            return False


async def watch_daemon(find_pid: Callable[[], int | None], stops: DeliberateStops | None = None, *,
                       settle: float = 10.0, interval: float = 0.1) -> int | None:
    """For ``ctdb_watch``: wait until the daemon's main process exits other than by
    the plugin's own stop; return its pid. None at once if no process is found (the
    next monitor event judges that). After a deliberate stop (``stops``) the new
    process is looked for for ``settle`` seconds and watched in turn; if none comes,
    the stopped one's pid (the restart failed). When the process exits while ``find_pid`` finds another (the parent of a
    daemon that forked), that one is watched instead. ``find_pid`` (a pid file read or
    a /proc scan) runs in a worker thread."""
    import anyio

    pid = await anyio.to_thread.run_sync(find_pid)
    while pid is not None:
        t0 = time.time()
        await wait_for_exit(pid)
        if stops is None or not await anyio.to_thread.run_sync(stops.since, t0 - 0.001):
            # A daemon that forks into the background: the process found may have been
            # the parent on its way out, with the real one running on.
            now = await anyio.to_thread.run_sync(find_pid)
            if now is not None and now != pid:
                pid = now
                continue
            return pid
        stopped, pid = pid, None
        with anyio.move_on_after(settle):
            while pid is None:
                await anyio.sleep(interval)
                pid = await anyio.to_thread.run_sync(find_pid)
        if pid is None:
            # The plugin's own restart did not bring it back (or it died at once): a
            # failure, as the next monitor event would find.
            return stopped
    return None
