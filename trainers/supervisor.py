"""The run supervisor: one process that supervises a daemon's attempts, ``python -m
labmind.trainers.supervisor FD``.

A wrapper process per attempt costs a Python start-up (about 0.1 s) and its memory for every
run. The run supervisor pays that once: the executor starts it in a session of its own and
hands it attempts over a Unix socket (``SOCK_SEQPACKET``, fd ``FD``). A request names a run
folder and carries one fd (``SCM_RIGHTS``): ``wrapper.lock``, already locked by the
executor (the supervisor makes ``wrapper.log`` only when it has something to say about the
attempt). The supervisor starts the command
(:class:`~labmind.trainers.supervision.Supervision`) and answers with ``start.json``'s
content, or an error. When an attempt is over it sends ``{"ended": DIR, "exit": {...},
"started": [[DIR2, {...}], ...]}``: ``exit.json``'s content (absent when that could not be
written) and the ``start.json`` of each attempt lined up behind it that started then, so
the daemon need not read them back from the folders. A request that also names ``"after":
DIR2`` lines the attempt up behind the attempt in ``DIR2`` (it starts once that one is over)
and is not answered; ``{"drop": DIR}`` lets go of an attempt lined up that has not started.
Neither needs the daemon's attention while a slot changes hands.

The supervisor outlives the daemon: at end of file on its socket (the daemon is gone) it
goes on supervising what it has (but lets go of what is lined up, which a new daemon starts
again), and exits when the last of those attempts has ended. A new
daemon starts a new supervisor for new attempts and finds the old ones from their folders.

Standard library only: this process sits next to every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import run_dir as rd
from .supervision import Ending, NotStarted, Supervision, say

_MAX_MESSAGE = 65536
_REPLY_TIMEOUT_S = 10.0


class SupervisorGone(OSError):
    """The supervisor could not be given the request (it died, or never started): nothing
    was started, so asking again, or starting the attempt another way, is safe."""


class Supervisor:
    """The executor's side: starts the run supervisor on first use and hands it attempts.

    ``on_end(ending)`` is called (from a reader thread) when an attempt handed over ends."""

    def __init__(
        self, python: str = sys.executable, on_end: Callable[[Ending], None] = lambda ending: None
    ) -> None:
        self.python = python
        self.on_end = on_end
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[dict[str, object] | None] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def start(self, run_dir: Path, lock_fd: int) -> rd.StartRecord:
        """Have the supervisor start the attempt in ``run_dir``; its ``start.json``. Raises
        :class:`SupervisorGone` when no supervisor can be reached (nothing was started),
        ``OSError`` when the supervisor could not start the attempt."""
        with self._lock:
            for attempt in range(2):
                sock = self._connect()
                try:
                    return self._ask(sock, run_dir, lock_fd)
                except SupervisorGone:
                    self._disconnect()
                    if attempt == 1:
                        raise
        raise AssertionError("unreachable")

    def boot(self) -> None:
        """Start the supervisor now if none runs: it starts up while the caller goes on, so
        that the next :meth:`start` does not wait for it. Raises :class:`SupervisorGone` when
        it cannot be started."""
        with self._lock:
            self._connect()

    def line_up(self, run_dir: Path, lock_fd: int, after: Path, pid: int) -> None:
        """Have the supervisor ``pid`` start the attempt in ``run_dir`` once the attempt in
        ``after`` (which it supervises) is over. Raises :class:`SupervisorGone` when that
        supervisor is not the one this object talks to, or cannot be reached (nothing was
        handed over)."""
        request = json.dumps({"run_dir": str(run_dir), "after": str(after)}).encode()
        with self._lock:
            sock = self._sock
            if sock is None or self.pid != pid:
                raise SupervisorGone("the attempt before it is not under this supervisor")
            try:
                socket.send_fds(sock, [request], [lock_fd])
            except OSError as exc:
                self._disconnect()
                raise SupervisorGone(f"the run supervisor is gone: {exc.strerror or exc}") from None

    def drop(self, run_dir: Path) -> None:
        """Ask the supervisor to let go of the attempt lined up in ``run_dir`` if it has not
        started (no answer: the attempt's lock tells)."""
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.send(json.dumps({"drop": str(run_dir)}).encode())

    def reports(self, pid: int) -> bool:
        """Whether the supervisor ``pid`` is this object's and still tells it of every end
        (it lives and its socket is open): then an attempt it has not reported runs."""
        return self.pid == pid and not self._closed.is_set()

    @property
    def pid(self) -> int | None:
        """The supervisor this object talks to, while it lives."""
        proc = self._proc
        if self._sock is None or proc is None or proc.returncode is not None:
            return None
        return proc.pid

    def close(self) -> None:
        """Let go of the supervisor: it goes on with what it supervises, then exits."""
        with self._lock:
            self._disconnect()

    def _connect(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self._disconnect()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [self.python, "-P", "-m", __name__, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise SupervisorGone(
                f"cannot start the run supervisor: {exc.strerror or exc}"
            ) from None
        finally:
            theirs.close()
        # Reaps the supervisor whenever it exits, which may be long after we let go of it.
        threading.Thread(target=proc.wait, name="labmind-supervisor-reaper", daemon=True).start()
        self._replies, self._closed = queue.Queue(), threading.Event()
        threading.Thread(
            target=_read, args=(ours, self._replies, self.on_end, self._closed), daemon=True
        ).start()
        self._sock, self._proc = ours, proc
        return ours

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        self._sock = self._proc = None

    def _ask(self, sock: socket.socket, run_dir: Path, lock_fd: int) -> rd.StartRecord:
        request = json.dumps({"run_dir": str(run_dir)}).encode()
        try:
            socket.send_fds(sock, [request], [lock_fd])
        except OSError as exc:
            raise SupervisorGone(f"the run supervisor is gone: {exc.strerror or exc}") from None
        # From here the attempt may have started: a failure is an error, never a reason to
        # ask again.
        try:
            reply = self._replies.get(timeout=_REPLY_TIMEOUT_S)
        except queue.Empty:
            self._disconnect()  # a late answer must not be taken for the next one's
            raise OSError("the run supervisor did not answer") from None
        if reply is None:
            raise OSError("the run supervisor went away while starting the attempt")
        if "error" in reply:
            raise OSError(str(reply["error"]))
        start = rd.StartRecord.from_json(reply)
        if start is None:
            raise OSError(f"the run supervisor answered something else: {reply}")
        return start


def _read(
    sock: socket.socket,
    replies: queue.Queue[dict[str, object] | None],
    on_end: Callable[[Ending], None],
    closed: threading.Event,
) -> None:
    """The client's reader: answers go to ``replies``, ends to ``on_end``; ``None`` at the
    end, when ``closed`` is set."""
    try:
        while message := sock.recv(_MAX_MESSAGE):
            data = json.loads(message)
            if isinstance(data, dict) and "ended" in data:
                on_end(_ending(data))
            elif isinstance(data, dict):
                replies.put(data)
    except (OSError, ValueError):
        pass
    finally:
        closed.set()
        replies.put(None)


def _ending(data: dict[str, object]) -> Ending:
    """An ``ended`` message; records that do not parse count as not sent (the folder has
    them)."""
    exit_data, started = data.get("exit"), data.get("started")
    exit_record = rd.ExitRecord.from_json(exit_data) if isinstance(exit_data, dict) else None
    starts = []
    for item in started if isinstance(started, list) else []:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict):
            record = rd.StartRecord.from_json(item[1])
            if record is not None:
                starts.append((Path(str(item[0])), record))
    return Ending(Path(str(data["ended"])), exit_record, tuple(starts))


# --- the supervisor process ----------------------------------------------------------------


def serve(sock: socket.socket) -> int:
    """Take attempts from ``sock`` until it closes, and supervise them until they end."""
    closed = False

    def ended(ending: Ending) -> None:
        if not closed:
            message: dict[str, object] = {
                "ended": str(ending.run_dir),
                "started": [[str(path), start.to_json()] for path, start in ending.started],
            }
            if ending.exit is not None:
                message["exit"] = ending.exit.to_json()
            with contextlib.suppress(OSError):
                sock.send(json.dumps(message).encode())

    # The daemon hears of every attempt that is over, with exit.json or without (then it
    # finds the attempt lost): it looks at its attempts' folders only when told.
    supervision = Supervision(on_end=ended, folder_log=True)
    supervision.install()

    def take() -> bool:
        nonlocal closed
        # At end of file the daemon is gone: what is lined up is let go of (its successor
        # decides), what runs goes on.
        closed = not _take(sock, supervision)
        return not closed

    supervision.run(sock.fileno(), take)
    return 0


def _take(sock: socket.socket, supervision: Supervision) -> bool:
    """Answer one request; whether the socket is still open."""
    try:
        message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 1)
    except InterruptedError:
        return True
    except OSError:
        return False
    if not message:
        for fd in fds:
            os.close(fd)
        return False
    reply: dict[str, object]
    request = _request(message)
    run_dir = _path(request.get("run_dir"))
    dropped, after = _path(request.get("drop")), _path(request.get("after"))
    if dropped is not None:
        for fd in fds:
            os.close(fd)
        supervision.drop(dropped)
        return True
    if run_dir is None or not fds:
        for fd in fds:
            os.close(fd)
        reply = {"error": "a malformed request: a run folder and its lock's fd are needed"}
    elif after is not None:
        supervision.line_up(run_dir, fds[0], after)
        return True
    else:
        try:
            reply = supervision.start(run_dir, fds[0]).to_json()
        except NotStarted as exc:
            reply = {"error": str(exc)}
    try:
        sock.send(json.dumps(reply).encode())
    except OSError:
        return False
    return True


def _request(message: bytes) -> dict[str, object]:
    try:
        data = json.loads(message)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        say("usage: python -m labmind.trainers.supervisor FD")
        return 2
    sock = socket.socket(fileno=int(args[0]))
    sock.set_inheritable(False)
    try:
        return serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
