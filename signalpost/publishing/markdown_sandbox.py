"""Markdown rendered in a child process with a deadline, so no body can hold the caller.

python-markdown spends quadratic time on some bodies (``"[](" * 50_000`` runs for
minutes; so do long runs of backslashes, thousands of footnote or abbreviation
definitions, raw HTML nested thousands deep) and recurses per level of nesting.
No cost model finds every such construct, and no timer stops a regular
expression at work inside a process. So each process keeps one long-lived
renderer child (``python -m signalpost.publishing.markdown_sandbox``: fork+exec,
safe in threaded servers) and sends it each body over its pipes, in
length-prefixed frames; the caller waits for the answer until a deadline, then
kills the child (a new one is started at once, for the next call) and raises
``RenderFailed``. The child imports no Django, limits its own address space
(``MEMORY_LIMIT``) and kills itself a second after its deadline should its
parent be gone. Threads of one process take turns; a forked process (a
gunicorn worker after ``--preload``) starts its own child.

Frames: a request is ``!dI`` (deadline in seconds, length) and the body in
UTF-8; an answer is ``!BI`` (``OK`` or ``FAILED``, length) and the HTML, or the
failure's kind in ASCII. The child writes one ``READY`` byte once it can render,
and one ``RECEIVED`` byte once it has read a whole request: a child that dies
before that (killed while idle) is replaced and the body sent again, while one
that dies after it died of the body.
"""

import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import markdown
import nh3

MARKDOWN_EXTENSIONS = ["extra", "sane_lists"]
ALLOWED_TAGS = nh3.ALLOWED_TAGS | {"figure", "figcaption"}
# The child's address space: rendering a 400 kB body peaks near 100 MB of RSS.
MEMORY_LIMIT = 1 << 30

REQUEST = struct.Struct("!dI")
ANSWER = struct.Struct("!BI")
READY = b"R"
RECEIVED = b"A"
OK, FAILED = 0, 1
# Text crosses the pipe exactly: a lone surrogate (JSON allows "\ud800") too.
ENCODING, ERRORS = "utf-8", "surrogatepass"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def markdown_render(text: str) -> str:
    """Return ``text`` (Markdown) as HTML sanitised by nh3, in this process, unbounded."""
    rendered = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS, output_format="html")
    return nh3.clean(rendered, tags=ALLOWED_TAGS, link_rel="noopener noreferrer")


class RenderFailed(Exception):
    """The child gave no HTML for a body; ``kind`` says why.

    ``timeout`` (it ran past the deadline and was killed), ``recursion`` (nested
    deeper than python-markdown can recurse), ``memory`` (over ``MEMORY_LIMIT``),
    ``crashed`` (the child died on it) or ``error`` (python-markdown raised).
    """

    def __init__(self, kind: str, seconds: float):
        super().__init__(f"rendering failed ({kind}) after {seconds:.2f} s")
        self.kind = kind
        self.seconds = seconds


class _Timeout(Exception):
    pass


class _Died(Exception):
    pass


class Sandbox:
    """One renderer child for this process, started when first needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._pid = 0  # the process that started the child
        self._ready = False
        # The admin's form renders a body to validate it, then the service renders it again.
        self._last: tuple[str, str] | None = None

    def render(self, text: str, *, timeout: float) -> str:
        """Return ``text`` rendered by ``markdown_render`` in the child, within ``timeout`` s.

        Raises ``RenderFailed``; the next call has a working child again.
        ``timeout`` bounds the whole call, the child's start included, but not
        the wait for another thread's turn.
        """
        with self._lock:
            last = self._last
            if last is not None and last[0] == text:
                return last[1]
            payload = text.encode(ENCODING, ERRORS)
            request = REQUEST.pack(timeout, len(payload)) + payload
            html = self._exchange(request, timeout=timeout)
            self._last = (text, html)
            return html

    def stop(self) -> None:
        """End the child, if this process started one."""
        with self._lock:
            self._kill()

    def forget_after_fork(self) -> None:
        """In a forked process: the child and the lock's state belong to the parent."""
        self._lock = threading.Lock()
        self._forget_child()

    def _forget_child(self) -> None:
        if self._process is not None:
            for pipe in (self._process.stdin, self._process.stdout):
                pipe.close()  # this process's copies only
            self._process.returncode = 0  # not ours to wait for (nor to warn about)
        self._process, self._pid, self._ready, self._last = None, 0, False, None

    def _exchange(self, request: bytes, *, timeout: float) -> str:
        started = time.monotonic()
        deadline = started + timeout
        try:
            try:
                process = self._send(request, deadline)
            except _Died:
                # It died before it had this body (killed while idle): not the body's doing.
                self._kill()
                process = self._send(request, deadline)
            status, length = ANSWER.unpack(_read(process.stdout.fileno(), ANSWER.size, deadline))
            answer = _read(process.stdout.fileno(), length, deadline)
        except _Timeout:
            self._restart()
            raise RenderFailed("timeout", time.monotonic() - started) from None
        except _Died:
            self._restart()
            raise RenderFailed("crashed", time.monotonic() - started) from None
        if status == OK:
            return answer.decode(ENCODING, ERRORS)
        kind = answer.decode("ascii")
        if kind != "recursion":
            self._restart()  # after running out of memory or an error, start clean
        raise RenderFailed(kind, time.monotonic() - started)

    def _send(self, request: bytes, deadline: float) -> subprocess.Popen:
        """Give the child (started if need be) the request; return it once it has it all.

        A child still starting reads the request once it is ready: its start
        counts towards the deadline (~0.15 s, paid by a process's first body
        and by the one after a refusal, unless the child started in between).
        """
        if self._pid != os.getpid():
            self._forget_child()  # forked since (register_at_fork has done this already)
        if self._process is not None and self._process.poll() is not None:
            self._kill()
        if self._process is None:
            self._start()
        process = self._process
        try:
            _write(process.stdin.fileno(), request, deadline)
            if not self._ready:
                ready = _read(process.stdout.fileno(), len(READY), deadline)
                if ready != READY:
                    self._kill()
                    raise RuntimeError(f"The Markdown renderer started badly: {ready!r}")
                self._ready = True
        except _Died:
            if self._ready:
                raise
            self._kill()
            raise RuntimeError("The Markdown renderer did not start: see its error.") from None
        if _read(process.stdout.fileno(), len(RECEIVED), deadline) != RECEIVED:
            self._kill()
            raise RuntimeError("The Markdown renderer answered out of turn.")
        return process

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            cwd=PACKAGE_ROOT,
        )
        self._pid = os.getpid()
        self._ready = False
        os.set_blocking(self._process.stdin.fileno(), False)

    def _restart(self) -> None:
        """Kill the child and start the next one now, so it is ready for the next call."""
        self._kill()
        self._start()

    def _kill(self) -> None:
        process, self._process, self._ready = self._process, None, False
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()


def _write(fd: int, data: bytes, deadline: float) -> None:
    """Write all of ``data`` to non-blocking ``fd`` by ``deadline``."""
    view = memoryview(data)
    while view:
        _wait(fd, select_for=select.POLLOUT, deadline=deadline)
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            raise _Died from None
        view = view[written:]


def _read(fd: int, size: int, deadline: float) -> bytes:
    """Read exactly ``size`` bytes from ``fd`` by ``deadline``."""
    chunks = []
    while size:
        _wait(fd, select_for=select.POLLIN, deadline=deadline)
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise _Died
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _wait(fd: int, *, select_for: int, deadline: float) -> None:
    poller = select.poll()
    poller.register(fd, select_for)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        if poller.poll(remaining * 1000):
            return


_sandbox = Sandbox()
os.register_at_fork(after_in_child=_sandbox.forget_after_fork)


def render(text: str, *, timeout: float) -> str:
    """Return ``text`` rendered as ``markdown_render`` does, by this process's child.

    Raises ``RenderFailed`` when it takes longer than ``timeout`` seconds or cannot be rendered.
    """
    return _sandbox.render(text, timeout=timeout)


# The child.


def _serve() -> None:
    """Render each request on stdin and answer on stdout until stdin closes."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    markdown_render("warm *up*")
    os.write(answers, READY)
    while True:
        header = _read_blocking(0, REQUEST.size)
        if header is None:
            return
        timeout, length = REQUEST.unpack(header)
        body = _read_blocking(0, length)
        if body is None:
            return
        os.write(answers, RECEIVED)
        text = body.decode(ENCODING, ERRORS)
        # Should the parent be gone, SIGALRM's default action ends this process.
        signal.setitimer(signal.ITIMER_REAL, timeout + 1.0)
        status, answer, end = OK, b"", False
        try:
            answer = markdown_render(text).encode(ENCODING, ERRORS)
        except RecursionError:
            status, answer = FAILED, b"recursion"
        except MemoryError:
            status, answer, end = FAILED, b"memory", True
        except Exception:
            traceback.print_exc()
            status, answer, end = FAILED, b"error", True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        os.write(answers, ANSWER.pack(status, len(answer)))
        view = memoryview(answer)
        while view:
            view = view[os.write(answers, view) :]
        if end:
            return


def _read_blocking(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    _serve()
