"""Joining a Ray cluster within a deadline, and keeping Ray's own output off the terminal.

Ray retries an address where no cluster answers for many minutes, printing C++ warnings straight to file
descriptor 2 all the while; its driver also prints what it forwards (workers' output, autoscaler events, the
cluster's errors) with colour codes. Here a join fails in one line within seconds, and Ray's output is shown
only when asked for, with control characters escaped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import tempfile
import threading
import time

from ..groundwork.errors import TaskarithError, clip, one_line, printable, quote

# a cluster answers a join in a second or two; off the 5 s steps at which an abandoned join of Ray's prints
JOIN_SECONDS = 8.0
_ADDRESS = re.compile(r"(?:ray://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")


def target_of(address: str | None) -> tuple[str | None, str]:
    """The address to join and how the user gave it; None: a new local cluster, or the one `ray start` made."""
    return (address, "--address") if address is not None else (os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS")


def check_address(address: str, named: str) -> None:
    """auto, local, HOST:PORT or ray://HOST:PORT with a port that can be dialled; refused before Ray sees it."""
    found = _ADDRESS.fullmatch(address)
    if address not in ("auto", "local") and not (found and 0 < int(found["port"]) < 65536):
        raise TaskarithError(f"{named} {quote(address)}: expected auto, HOST:PORT or ray://HOST:PORT "
                             f"(PORT from 1 to 65535)")


@contextlib.contextmanager
def _ray_stderr(show: bool):
    """Ray's C++ core writes its warnings to file descriptor 2 itself, past sys.stderr and Python's logging, as
    may the processes of a local cluster started in the block, which inherit it: it points at nothing, or, when
    `show`, at a scratch file shown escaped afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved, sink = os.dup(2), tempfile.TemporaryFile() if show else open(os.devnull, "wb")
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        with sink:
            if show:
                sink.seek(0)
                for line in sink.read().decode(errors="replace").splitlines():
                    print(printable(line), file=sys.stderr)


def _dial(ray, target: str, seconds: float) -> None:
    """A TCP connection to HOST:PORT within `seconds`. Where nothing listens, Ray's client retries for many
    minutes, from a thread that cannot be stopped and keeps printing, so that case never reaches Ray."""
    host, port = target.removeprefix("ray://").replace("[", "").replace("]", "").rsplit(":", 1)
    if host in ("localhost", "127.0.0.1", "::1"):
        host = ray.util.get_node_ip_address()  # where Ray itself dials a local name
    socket.create_connection((host, int(port)), timeout=seconds).close()


def _init_within(ray, seconds: float, **options) -> None:
    """ray.init given `seconds`, for what answers a TCP connection but not as a Ray cluster: Ray's client then
    blocks in C++ and cannot be interrupted, so the join runs in a daemon thread left behind at the deadline.
    Only for joining: a local cluster's processes die with the thread that started them."""
    failed: list[Exception] = []

    def init() -> None:
        try:
            ray.init(**options)
        except Exception as e:
            failed.append(e)

    joining = threading.Thread(target=init, name="ray-join", daemon=True)
    joining.start()
    joining.join(seconds)
    if joining.is_alive():
        raise TimeoutError
    if failed:
        raise failed[0]


def connect(ray, address: str | None, show: bool, seconds: float | None = None) -> None:
    """Join the cluster at `address` (RAY_ADDRESS where None, else a new local one) within `seconds`
    (JOIN_SECONDS), or say in one line why not. Ray's own output stays off the terminal unless `show`."""
    seconds = JOIN_SECONDS if seconds is None else seconds
    target, named = target_of(address)
    options = {"address": address, "include_dashboard": False, "log_to_driver": show,
               "logging_level": logging.WARNING if show else logging.CRITICAL}
    deadline = time.monotonic() + seconds
    try:
        if target not in (None, "auto", "local"):
            _dial(ray, target, seconds)
        with _ray_stderr(show):
            if target in (None, "local"):
                ray.init(**options)
            else:
                _init_within(ray, max(deadline - time.monotonic(), 0.1), **options)
    except (OSError, ValueError, RuntimeError) as e:  # ConnectionError and TimeoutError are OSErrors
        where = f"{named} {quote(target)}: cannot join a Ray cluster" if target else \
            "cannot start or join a local Ray cluster"
        reason = f"no answer within {seconds:g} s" if isinstance(e, TimeoutError) else \
            getattr(e, "strerror", None) or str(e)
        raise TaskarithError(f"{where} ({clip(one_line(reason))})") from None


class _EscapedRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


_shown = {"ray_output": False}


def show_ray_output(ray, show: bool) -> None:
    """Whether the driver prints what Ray forwards (workers' output, autoscaler events, the cluster's errors),
    all of which passes through one function of Ray's: when shown, with control characters escaped, as are
    the records of Ray's Python loggers."""
    _shown["ray_output"] = show
    if show:
        os.environ["RAY_COLOR_PREFIX"] = "0"  # no colour codes around Ray's prefix (pid, node), read at each print
        for handler in logging.getLogger("ray").handlers:
            if not any(isinstance(f, _EscapedRecords) for f in handler.filters):
                handler.addFilter(_EscapedRecords())
    worker = ray._private.worker
    real = worker.print_worker_logs
    if getattr(real, "escaped", False):
        return

    def print_worker_logs(data: dict, print_file, *args, **kwargs) -> None:
        if _shown["ray_output"]:
            real({**data, "lines": [printable(line) for line in data.get("lines", ())]}, print_file, *args, **kwargs)

    print_worker_logs.escaped = True  # type: ignore[attr-defined]
    worker.print_worker_logs = print_worker_logs
