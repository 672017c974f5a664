"""A preloaded Python that forks one fresh process for each `otflows` command of a run.

Every Snakemake job is one `otflows` process, and most of a small job's time is imports:
``import torch`` alone costs 1.1-1.6 s of CPU here, ``torch._dynamo`` (which every
``torch.optim`` step imports) another 1.1 s, torchdiffeq (scipy) 0.4 s, matplotlib and pandas
0.7 s, while a smoke-profile training job computes for 0.1 s (``benchmarks/process_start.py``).
During a local ``snakemake`` run the Snakefile starts one server (:func:`start`) that
imports those libraries once and listens on a Unix socket named by ``$OTFLOWS_FORKSERVER``.
The ``otflows`` command (:mod:`otflows.cli.launcher`) sends its argv, working directory,
environment and standard streams there; the server forks, and the child runs
:func:`otflows.cli.main.main` exactly as a new process would (its own pid, streams, cwd and
environment; the Python and NumPy global RNGs reseeded from the OS), then reports its exit
status. Without the variable, or when the server cannot be reached, the command runs in its
own process as before: the results are the same either way (tests/test_forkserver.py).

The server never runs a tensor operation, so no OpenMP thread pool and no CUDA context exists
before a fork; each child creates its own. The only other threads are the idle OpenBLAS
servers of numpy and scipy, which re-create themselves in a child (pthread_atfork). The
server exits when Snakemake stops it, when Snakemake itself is gone, or on SIGTERM. Only the
standard library is imported at module level: the client side runs in every command before
anything else.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading
import time

__all__ = ["ENV_VAR", "PRELOAD", "Server", "run_via_server", "serve", "start", "supported"]

ENV_VAR = "OTFLOWS_FORKSERVER"
# the libraries, then the command's own parser and modules (~20 ms a job) and the markdown
# writer of the tables (tabulate, ~20 ms a table)
PRELOAD = ("numpy", "torch", "torch._dynamo", "torchdiffeq", "matplotlib.pyplot", "pandas",
           "tabulate", "otflows.cli.main")
EXTRA_VAR, OPTIONAL_PRELOAD = ENV_VAR + "_EXTRA", ("ot",)  # POT, ~1 CPU-s: where a run asks
# then the project's modules that the jobs import lazily: 0.2 CPU-s once in the server instead
# of 20-60 ms in each of ~100 jobs (a figure job builds the registry of every report module, a
# training job imports its method and the training loop)
PROJECT_PRELOAD = ("otflows.pipeline.training", "otflows.pipeline.checkpoint",
                   "otflows.pipeline.config", "otflows.pipeline.tracking", "otflows.metrics.mmd",
                   "otflows.reports.summary")
_TMP_PREFIX = "otflows-fs-"
_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!ci")  # (b"P", child pid) then (b"X", exit code)
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2)


def _send_request(sock: socket.socket, obj: dict, fds: list[int]) -> None:
    """Length-prefixed JSON, with ``fds`` passed alongside the first bytes (SCM_RIGHTS)."""
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [payload], fds)
    sock.sendall(payload[sent:])


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    """Inverse of :func:`_send_request`: the JSON object and the passed descriptors."""
    first, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    if len(first) < _HEADER.size:
        first += _recv_exact(sock, _HEADER.size - len(first))
    (size,) = _HEADER.unpack(first[: _HEADER.size])
    body = first[_HEADER.size :]
    if len(body) < size:
        body += _recv_exact(sock, size - len(body))
    return json.loads(body), list(fds)


# --------------------------------------------------------------------------- client side


def run_via_server(argv: list[str]) -> int | None:
    """Run ``argv`` in a child of the server named by ``$OTFLOWS_FORKSERVER``; its exit code.

    Returns None, having run nothing, when the variable is unset, the server does not answer
    or a standard stream is closed: the caller then runs the command in its own process.
    Signals this process receives while the child runs are forwarded to the child.
    """
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        request = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}
        _send_request(sock, request, [0, 1, 2])
        tag, pid = _STATUS.unpack(_recv_exact(sock, _STATUS.size))
    except (OSError, EOFError):
        sock.close()
        return None  # nothing was forked: safe to run here instead
    if tag != b"P":
        raise RuntimeError(f"otflows fork server at {path}: unexpected reply {tag!r}")
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    try:
        tag, code = _STATUS.unpack(_recv_exact(sock, _STATUS.size))
        return code
    except EOFError:  # the child died without reporting (a signal, or out of memory)
        if received:
            return 128 + received[-1]
        print(f"otflows: job process {pid} (forked by {path}) ended without an exit status; "
              "it was killed by a signal, possibly for lack of memory", file=sys.stderr)
        return 1
    finally:
        sock.close()


# --------------------------------------------------------------------------- server side


def _reopen_stdio() -> None:
    """Fresh sys.stdin/stdout/stderr on fds 0-2, buffered as a new interpreter would be."""
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, name)
        tty = os.isatty(fd)
        stream = open(fd, mode, encoding=old.encoding, errors=old.errors, closefd=False,
                      buffering=-1 if mode == "r" else 1 if (tty or fd == 2) else -1)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _watch_client(conn: socket.socket) -> None:
    """Terminate this job if its client goes away (the job was killed, even with SIGKILL)."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _times_path(log: str | None) -> str | None:
    """The file beside ``log`` that gets one line per finished job (wall and CPU seconds)."""
    if not log:
        return None
    stem = log[: -len(".jsonl")] if log.endswith(".jsonl") else log
    return stem + ".times.jsonl"


def _record_time(times: str, request: dict, started: float, code: int) -> None:
    """Append the finished job's wall and CPU seconds (this process only) to ``times``."""
    line = json.dumps({"pid": os.getpid(), "argv": request.get("argv", [])[1:3],
                       "wall": round(time.monotonic() - started, 4),
                       "cpu": round(time.process_time(), 4), "end": round(time.time(), 3),
                       "exit": code})
    fd = os.open(times, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write to an O_APPEND file: lines stay whole
    finally:
        os.close(fd)


def _run_child(conn: socket.socket, request: dict, fds: list[int],
               times: str | None = None) -> None:
    """Become the job: take the client's streams, cwd and environment, run the CLI, exit.
    ``times``: a file that gets the job's wall and CPU seconds when it ends."""
    started = time.monotonic()
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        if sys.argv and os.path.isfile(sys.argv[0]):  # as a new interpreter running the script
            sys.path.insert(0, os.path.dirname(os.path.realpath(sys.argv[0])))
        _reopen_stdio()
        import random

        random.seed()  # a new interpreter seeds these from the OS; so do we
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        conn.sendall(_STATUS.pack(b"P", os.getpid()))
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        from otflows.cli.main import main

        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # reported as an uncaught exception would be
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            if times:
                try:
                    _record_time(times, request, started, int(code or 0))
                except OSError:
                    pass
            try:
                conn.sendall(_STATUS.pack(b"X", int(code or 0)))
            except OSError:
                pass
            os._exit(int(code or 0) & 0xFF)


def _preload_project() -> None:
    """Import :data:`PROJECT_PRELOAD`, every registered method and every report module (the
    same modules, in the same state, that a job would import itself). A module that fails to
    import is left out: the job that needs it imports it again and reports the error."""
    import importlib

    from otflows import reports
    from otflows.methods import METHODS

    for name in (*PROJECT_PRELOAD, *METHODS.values()):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - see the docstring
            pass
    try:
        reports.FIGURES  # noqa: B018 - builds the registry: imports every per-paper module
    except Exception:  # noqa: BLE001
        pass


def serve(path: str, parent: int | None = None, log: str | None = None) -> None:
    """Listen on ``path``, import :data:`PRELOAD`, then fork one child per request.

    ``parent``: exit once this pid is no longer our parent (Snakemake is gone). ``log``: a
    file, emptied at start, that gets one JSON line per forked job of this server (time, pid,
    cwd, argv), for tests and debugging; beside it, :func:`_times_path` gets one line per
    finished job (its wall and CPU seconds, ``benchmarks/snakemake_smoke.py``).
    """
    started = round(time.time(), 3)
    times = _times_path(log)
    for kept in (log, times):
        if kept:
            open(kept, "w", encoding="utf-8").close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # bind before the imports: early clients queue instead of failing
    listener.listen(128)

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    try:
        os.environ.setdefault("MPLBACKEND", "Agg")
        import importlib

        asked = os.environ.get(EXTRA_VAR, "").split(",")  # e.g. "ot" (the benchmark profile)
        for name in (*PRELOAD, *(m for m in OPTIONAL_PRELOAD if m in asked)):
            importlib.import_module(name)
        _preload_project()
        if times:
            with open(times, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"preload": round(time.process_time(), 4),
                                     "start": started, "end": round(time.time(), 3)}) + "\n")
        listener.settimeout(1.0)
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if parent is not None and os.getppid() != parent:
                    return
                continue
            with conn:
                conn.settimeout(10.0)
                try:
                    request, fds = _recv_request(conn)
                except (OSError, EOFError, ValueError):
                    continue
                if len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    continue
                conn.settimeout(None)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _run_child(conn, request, fds, times)  # never returns
                for fd in fds:
                    os.close(fd)
                if log:
                    with open(log, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "pid": pid, "cwd": request["cwd"],
                                             "argv": request["argv"]}) + "\n")
    finally:
        listener.close()
        try:
            os.unlink(path)
            if os.path.basename(os.path.dirname(path)).startswith(_TMP_PREFIX):
                os.rmdir(os.path.dirname(path))  # the directory start() made for it
        except OSError:
            pass


class Server:
    """A running fork server: its process and socket path; :meth:`stop` ends it."""

    def __init__(self, process, path: str, tmpdir: str) -> None:
        self.process, self.path, self._tmpdir = process, path, tmpdir

    def stop(self) -> None:
        """Terminate the server (jobs it forked carry on) and remove its socket."""
        import shutil

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def supported() -> bool:
    """Whether this platform runs the server: Linux only.

    macOS frameworks (Objective-C runtime, Accelerate) are not safe to use in a child forked
    after they were loaded, and Windows has no fork; there every job starts its own Python.
    """
    return sys.platform.startswith("linux")


def start(log: str | None = None, export: bool = True) -> Server:
    """Start a server as a child of this process; with ``export``, set ``$OTFLOWS_FORKSERVER``.

    Returns at once: the socket exists before the server has finished importing, and
    clients that connect early wait in the listen queue.
    """
    import subprocess
    import tempfile

    tmpdir = tempfile.mkdtemp(prefix=_TMP_PREFIX)
    path = os.path.join(tmpdir, "sock")
    # -P: no working directory on sys.path, which every forked job inherits
    cmd = [sys.executable, "-P", "-m", "otflows.cli.forkserver", path, "--parent", str(os.getpid())]
    if log:
        cmd += ["--log", os.path.abspath(log)]
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30.0
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"otflows fork server did not start (exit {process.poll()})")
        time.sleep(0.01)
    if export:
        os.environ[ENV_VAR] = path
    return Server(process, path, tmpdir)


def main(argv: list[str] | None = None) -> None:
    """``python -m otflows.cli.forkserver SOCKET [--parent PID] [--log FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("--parent", type=int, default=None)
    parser.add_argument("--log", default=None)
    args = parser.parse_args(argv)
    code = 0
    try:
        serve(args.socket, args.parent, args.log)  # its `finally` removes the socket
    except SystemExit as exc:  # SIGTERM's handler raises SystemExit(0)
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    # Skip the interpreter's teardown: finalising torch, matplotlib and pandas took 1.2 s after
    # SIGTERM on an idle machine (3.1-3.8 s loaded), and Snakemake waits for this exit at the
    # end of every run (onsuccess); now 0.07-0.12 s.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
