#!/usr/bin/env python3
"""A client for verdictd in one file, Python 3.9+ standard library only.

As a module::

    import verdict_client
    verdict = verdict_client.wait("/path/to/session", cap=60)
    print(verdict["outcome"], verdict["exit"])

As a command, a drop-in for ``verdict wait`` (same exit codes, the same
session output and marker lines on stdout and stderr)::

    python3 verdict_client.py wait <SESSION> [--cap S] [--socket P] [--json] [--no-spawn]

The protocol is documented in PROTOCOL.md; this file follows it and nothing
else. If the daemon goes away mid-wait, the client reconnects (starting
``verdictd`` from PATH if nothing listens, unless told not to) and waits for
what is left of the cap.
"""

import argparse
import errno
import json
import math
import os
import shutil
import socket as socketlib
import stat
import subprocess
import sys
import time

__all__ = [
    "wait",
    "wait_many",
    "events",
    "socket_path",
    "VerdictError",
    "render_markers",
    "completed_marker",
]

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 64 * 1024
SPAWN_DEADLINE_S = 10.0
MAX_FAILED_RECONNECTS = 5
DEFAULT_CAP_MS = 240000
# How long past the cap a connected daemon may take to answer (exit 3 after).
ANSWER_MARGIN_S = 5.0

EXIT_BAD_USE = 2
EXIT_UNREACHABLE = 3


class VerdictError(Exception):
    """The wait ended without a verdict. ``exit`` is the exit code to use."""

    def __init__(self, message, code="unreachable", exit=EXIT_UNREACHABLE, reply=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit = exit
        self.reply = reply


def socket_path(explicit=None):
    """--socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock,
    else /tmp/verdictd-<uid>/verdictd.sock."""
    if explicit:
        return explicit
    if os.environ.get("VERDICT_SOCKET"):
        return os.environ["VERDICT_SOCKET"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "verdictd.sock")
    return "/tmp/verdictd-%d/verdictd.sock" % os.getuid()


def _session_arg(session):
    """A path (anything with a slash, or a directory here) is sent canonical
    and absolute, like the Rust client; an id is sent as it is."""
    if "/" in session or session in (".", "..") or os.path.isdir(session):
        return os.path.realpath(session)
    return session


def _cwd():
    try:
        return os.path.realpath(os.getcwd())
    except OSError:
        return None


def _cap_ms(cap):
    """Seconds to milliseconds: 0 is no cap, a positive cap stays positive."""
    if cap is None:
        return None
    if not (isinstance(cap, (int, float)) and math.isfinite(cap) and cap >= 0):
        raise VerdictError("cap must be a finite number of seconds >= 0 (0: no cap)", "bad_request", EXIT_BAD_USE)
    if cap == 0:
        return 0
    return max(int(math.ceil(cap * 1000)), 1)


def _nobody_listens(err):
    return err.errno in (errno.ENOENT, errno.ECONNREFUSED)


def _check_fallback_dir(path):
    """/tmp/verdictd-<uid> must be ours and private before anything in it is
    trusted: another user could have made it first (a fake daemon, a symlink)."""
    directory = os.path.dirname(path)
    if directory != "/tmp/verdictd-%d" % os.getuid():
        return
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as err:
        raise VerdictError("refusing to use %s: it cannot be created (%s)" % (directory, err))
    st = os.lstat(directory)
    why = None
    if not stat.S_ISDIR(st.st_mode):
        why = "it is not a directory (a symlink?)"
    elif st.st_uid != os.getuid():
        why = "it belongs to uid %d, not to you" % st.st_uid
    elif st.st_mode & 0o077:
        why = "its mode is %o; it must be private (0700)" % (st.st_mode & 0o7777)
    if why:
        raise VerdictError("refusing to use %s: %s; remove it, or set XDG_RUNTIME_DIR or --socket" % (directory, why))


def _open_log(path):
    """The daemon's log: never through a symlink, only a file of our own."""
    try:
        fd = os.open(path + ".log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return subprocess.DEVNULL
    st = os.fstat(fd)
    if st.st_uid != os.getuid() or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return subprocess.DEVNULL
    return os.fdopen(fd, "ab")


def _start_daemon(path):
    binary = os.environ.get("VERDICTD") or shutil.which("verdictd")
    if not binary:
        raise VerdictError("verdictd is not running at %s and is not on PATH; start it" % path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise VerdictError("cannot start verdictd: the socket directory %s does not exist" % directory)
    log = _open_log(path)
    try:
        return subprocess.Popen(
            [binary, "--socket", path, "--spawned"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    finally:
        if log is not subprocess.DEVNULL:
            log.close()


def _try_connect(path):
    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    try:
        sock.connect(path)
        return sock
    except OSError:
        sock.close()
        raise


def _connect(path, spawn):
    _check_fallback_dir(path)
    try:
        return _try_connect(path)
    except OSError as err:
        if not _nobody_listens(err):
            raise VerdictError("cannot connect to verdictd at %s: %s" % (path, err))
        if not spawn:
            raise VerdictError("verdictd is not running at %s (%s); start it with `verdictd --socket %s &`, "
                               "or drop --no-spawn" % (path, err, path))
    child = _start_daemon(path)
    deadline = time.monotonic() + SPAWN_DEADLINE_S
    pause = 0.001
    while True:
        try:
            return _try_connect(path)
        except OSError as err:
            child.poll()  # reap a daemon that lost the start-up race
            if time.monotonic() >= deadline:
                raise VerdictError("started verdictd for %s, but it did not start listening (%s)" % (path, err))
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _lines(sock):
    """Yields (dict, raw line) per reply; returns at end of stream."""
    buf = b""
    while True:
        newline = buf.find(b"\n")
        if newline >= 0:
            line, buf = buf[:newline], buf[newline + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                reply = json.loads(line.decode("utf-8"))
                if not isinstance(reply, dict):
                    raise VerdictError("protocol error: a reply is not a JSON object")
                yield reply, line
            continue
        if len(buf) > MAX_LINE_BYTES:
            raise VerdictError("protocol error: a reply line is longer than %d bytes" % MAX_LINE_BYTES)
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk


_ERROR_EXITS = {"unknown_session": EXIT_BAD_USE, "bad_request": EXIT_BAD_USE, "session_removed": 1}


def _deadline(state):
    """Monotonic time after which a silent daemon is given up on, or None."""
    cap_ms = state["cap_ms"]
    if cap_ms == 0:
        return None
    return state["started"] + (DEFAULT_CAP_MS if cap_ms is None else cap_ms) / 1000.0 + ANSWER_MARGIN_S


_OUTCOMES = ("completed", "kv_warm", "timeout")


def _check_verdict(reply):
    """A verdict this client can act on, or VerdictError (exit 3): a
    malformed reply must never pass for the session's own failure, and an
    exit beyond a byte would wrap (256 is 0)."""
    exit_code = reply.get("exit")
    if (reply.get("outcome") not in _OUTCOMES or not isinstance(reply.get("session"), str)
            or not isinstance(reply.get("status"), str) or isinstance(exit_code, bool)
            or not isinstance(exit_code, int) or not 0 <= exit_code <= 255):
        raise VerdictError("protocol error: the daemon's verdict is malformed: %s"
                           % _one_line(json.dumps(reply))[:200])


def _attempt(sock, session, cap_ms, state):
    request = {"v": PROTOCOL_VERSION, "id": 1, "op": "wait", "session": session}
    if cap_ms is not None:
        request["cap_ms"] = cap_ms
    cwd = _cwd()
    if cwd:
        request["cwd"] = cwd
    deadline = _deadline(state)
    if deadline is not None:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(json.dumps(request, separators=(",", ":")).encode("utf-8") + b"\n")
    for reply, raw in _lines(sock):
        if type(reply.get("id")) is not int or reply.get("id") != 1:
            continue
        event = reply.get("event")
        if event == "watching":
            state["watched"] = True
            state["dir"] = reply.get("dir")
            if state["cap_ms"] is None:
                state["cap_ms"] = reply.get("cap_ms")
                deadline = _deadline(state)
                if deadline is not None:
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
        elif event == "verdict":
            _check_verdict(reply)
            reply["_raw"] = raw
            return reply
        elif event == "error":
            code = reply.get("code", "internal")
            raise VerdictError(reply.get("message", code), code, _ERROR_EXITS.get(code, EXIT_UNREACHABLE), reply)
        # Unknown events are skipped, as PROTOCOL.md asks.
    return None


def wait(session, cap=None, socket=None, spawn=True):
    """Blocks until ``session`` (a directory path or an id) has a verdict and
    returns the verdict object (a dict with ``outcome``, ``status``, ``exit``
    and more; see PROTOCOL.md). ``cap`` is in seconds (0: no cap; None: the
    daemon's default). Raises VerdictError when there is no verdict."""
    session = _session_arg(session)
    path = socket_path(socket)
    started = time.monotonic()
    state = {"cap_ms": _cap_ms(cap), "watched": False, "started": started, "dir": None}
    failures = 0
    while True:
        remaining = state["cap_ms"]
        if remaining:
            elapsed_ms = int((time.monotonic() - started) * 1000)
            remaining = max(remaining - elapsed_ms, 1)
        sock = _connect(path, spawn)
        state["watched"] = False
        try:
            verdict = _attempt(sock, session, remaining, state)
            why = "the daemon closed the connection"
        except socketlib.timeout:
            raise VerdictError("verdictd at %s did not answer within %ds of the cap; giving up"
                               % (path, ANSWER_MARGIN_S))
        except OSError as err:
            verdict, why = None, str(err)
        except ValueError as err:
            raise VerdictError("protocol error: %s" % err)
        finally:
            sock.close()
        if verdict is not None:
            verdict["_elapsed_s"] = int(time.monotonic() - started)
            verdict["_elapsed_ms"] = int((time.monotonic() - started) * 1000)
            verdict["_cap_ms"] = state["cap_ms"] or 0
            verdict["_dir"] = state["dir"]
            return verdict
        failures = 1 if state["watched"] else failures + 1
        if failures > MAX_FAILED_RECONNECTS:
            raise VerdictError("lost the connection to verdictd at %s (%s); giving up" % (path, why))


def wait_many(sessions, mode="all", cap=None, socket=None, spawn=True):
    """Waits on several sessions over one connection and yields each answer
    as it arrives: a verdict dict, or for a session the daemon refused, the
    error reply (``event`` is ``"error"``). Each has ``_session``, the
    session as given. ``mode="all"`` ends when every session has an
    answer; ``mode="any"`` ends after the first completed verdict (the other
    waits are cancelled when the connection closes). ``cap`` as in
    ``wait()``. Raises VerdictError if the daemon goes away first."""
    if mode not in ("all", "any"):
        raise ValueError("mode must be 'all' or 'any', not %r" % (mode,))
    args = [_session_arg(s) for s in sessions]
    cap_ms = _cap_ms(cap)
    sock = _connect(socket_path(socket), spawn)
    try:
        lines = []
        cwd = _cwd()
        for i, session in enumerate(args):
            request = {"v": PROTOCOL_VERSION, "id": i + 1, "op": "wait", "session": session}
            if cap_ms is not None:
                request["cap_ms"] = cap_ms
            if cwd:
                request["cwd"] = cwd
            lines.append(json.dumps(request, separators=(",", ":")))
        sock.sendall(("\n".join(lines) + "\n").encode("utf-8"))
        pending = set(range(1, len(args) + 1))
        for reply, _raw in _lines(sock):
            rid = reply.get("id")
            if type(rid) is not int or rid not in pending or reply.get("event") not in ("verdict", "error"):
                continue
            if reply.get("event") == "verdict":
                _check_verdict(reply)
            pending.discard(rid)
            reply["_session"] = sessions[rid - 1]
            yield reply
            if mode == "any" and reply.get("outcome") == "completed":
                return
            if not pending:
                return
        raise VerdictError("verdictd closed the connection with %d sessions unanswered" % len(pending))
    finally:
        sock.close()


def events(under=(), socket=None, spawn=True):
    """Subscribes and yields every event as a dict, until the caller stops
    iterating: ``started`` (a new session's process runs) and ``verdict``
    (a session ended; ``dir`` says which). ``under`` limits them to sessions
    under those directories. Raises VerdictError if the daemon goes away."""
    request = {"v": PROTOCOL_VERSION, "id": "events", "op": "subscribe"}
    if under:
        request["under"] = [os.path.realpath(d) for d in under]
    sock = _connect(socket_path(socket), spawn)
    try:
        sock.sendall(json.dumps(request, separators=(",", ":")).encode("utf-8") + b"\n")
        for reply, _raw in _lines(sock):
            event = reply.get("event")
            if event == "error":
                code = reply.get("code", "internal")
                raise VerdictError(reply.get("message", code), code, _ERROR_EXITS.get(code, EXIT_UNREACHABLE), reply)
            if event in ("started", "verdict"):
                yield reply
        raise VerdictError("verdictd closed the subscription")
    finally:
        sock.close()


def _escape(value, unquoted):
    out = []
    for c in value:
        if c == "&":
            out.append("&amp;")
        elif c == '"':
            out.append("&quot;")
        elif c == "<":
            out.append("&lt;")
        elif c == ">":
            out.append("&gt;")
        elif _is_control(c) or (unquoted and (c.isspace() or c == "=")):
            out.append("&#%d;" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _is_control(c):
    code = ord(c)
    return code < 0x20 or 0x7F <= code < 0xA0


def _one_line(value):
    return "".join("&#%d;" % ord(c) if _is_control(c) else c for c in value)


_POLLING = (
    "If you background the wait (run_in_background: true), the completion task-notification IS your wake "
    "signal \u2014 do NOT stack ScheduleWakeup, /loop, or sleep loops on top; that's pure redundancy and wastes "
    "tokens. FORBIDDEN: ls/cat/wc/grep on session-dir, state.toml reads, ps checks on daemon PID \u2014 any "
    "manual polling wastes caller tokens with zero benefit."
)


def _seconds(ms):
    return str(ms // 1000) if ms % 1000 == 0 else ("%g" % (ms / 1000.0))


def completed_marker(verdict):
    """The SESSION_WAIT_COMPLETED marker; exit= is the wait's exit code."""
    return "<!-- CSA:SESSION_WAIT_COMPLETED session=%s status=%s exit=%d synthetic=%s -->" % (
        _escape(verdict["session"], True), _escape(verdict["status"], True), verdict["exit"],
        "true" if verdict.get("synthetic") else "false")


def _failure_summary(verdict):
    if verdict.get("synthetic"):
        reason = verdict.get("reason") or "unknown"
        why = ("no daemon.pid and no live process, result.toml missing" if reason == "no_live_process"
               else "process dead, result.toml missing")
        return "synthetic failure by verdict wait: %s (reason=%s)" % (why, _one_line(reason))
    summary = verdict.get("summary")
    code = verdict.get("exit_code")
    if summary and summary.strip() and verdict.get("status") == "failure" and code not in (None, 0):
        return _one_line(summary)
    return None


def render_markers(verdict, session_arg, elapsed_s, streamed=False):
    """The lines ``verdict wait`` prints on stderr, as csa's ``session wait``
    does (the COMPLETED marker also goes to stdout, after the session's
    stdout.log). ``streamed`` says whether stdout.log had any bytes."""
    sid = verdict["session"]
    rewait = session_arg if session_arg.startswith("/") else sid
    cap = _seconds(verdict.get("_cap_ms", 0))
    outcome = verdict["outcome"]
    if outcome == "completed":
        lines = []
        summary = None if streamed else _failure_summary(verdict)
        if summary:
            lines.append(summary)
        lines.append(completed_marker(verdict))
        lines.append('<!-- CSA:CALLER_HINT action="next_session" rule="If you have more sessions to wait for, '
                     "call each 'verdict wait' in a SEPARATE Bash call. NEVER batch. Generate tokens between "
                     'waits to keep your KV cache warm. %s" -->' % _POLLING)
        if verdict.get("synthetic") and not streamed:
            lines.append("Session %s reached a synthesized terminal result because no live daemon process "
                         "remained." % _one_line(sid))
        return lines
    if outcome == "kv_warm":
        cmd = _escape("verdict wait %s" % rewait, False)
        return [
            "Session %s still running after %ss wait cap; returning so caller can warm its KV cache before "
            "re-waiting." % (_one_line(sid), cap),
            '<!-- CSA:SESSION_WAIT_KV_WARM session=%s status=alive elapsed=%ds action=re-wait cmd="%s" -->'
            % (_escape(sid, True), elapsed_s, cmd),
            '<!-- CSA:CALLER_HINT action="retry_wait" rule="Session is alive; this exit is healthy. Process this '
            "output NOW and generate tokens to warm your KV cache, then call '%s' again in a NEW Bash call. "
            'NEVER batch multiple session waits in one Bash call. %s" -->' % (cmd, _POLLING),
        ]
    cmd = _escape("verdict wait %s --json" % rewait, False)
    return [
        "Timeout: session %s did not complete within %ss and no live daemon process remains." % (_one_line(sid), cap),
        '<!-- CSA:SESSION_WAIT_TIMEOUT session=%s elapsed=%ds status=dead cmd="%s" -->'
        % (_escape(sid, True), elapsed_s, cmd),
    ]


class _Output:
    """stdout and stderr whose failures never change the exit code: a
    closed stderr is ignored, and a broken stdout ends writing to it."""

    def __init__(self):
        # A stream closed before we started is None in Python.
        self.stdout_ok = sys.stdout is not None

    def out(self, data):
        if not self.stdout_ok:
            return
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except (OSError, ValueError):
            self.stdout_ok = False

    def copy(self, path):
        """Copies a session's stdout.log to stdout in chunks; returns the
        bytes copied. Opened as verdict opens it: non-blocking (a FIFO put
        in its place cannot hang the wait), then fstat'ed (a regular file
        only), and copied up to the size it had then (a log still growing
        cannot keep the wait from ending)."""
        copied = 0
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
        try:
            fd = os.open(path, flags)
        except OSError:
            return 0
        try:
            size = os.fstat(fd).st_size if stat.S_ISREG(os.fstat(fd).st_mode) else 0
            while self.stdout_ok and copied < size:
                chunk = os.read(fd, min(65536, size - copied))
                if not chunk:
                    break
                copied += len(chunk)
                self.out(chunk)
        except OSError:
            pass
        finally:
            os.close(fd)
        return copied

    @staticmethod
    def err(line):
        if sys.stderr is None:
            return
        try:
            sys.stderr.buffer.write(line.encode("utf-8", "replace") + b"\n")
            sys.stderr.buffer.flush()
        except (OSError, ValueError):
            pass


def _main(argv):
    parser = argparse.ArgumentParser(prog="verdict_client.py", description="Wait for a session's verdict from verdictd.")
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("wait", help="block until SESSION has a verdict")
    w.add_argument("session", help="session directory, or session id (or a unique prefix)")
    w.add_argument("--cap", metavar="SECONDS", help="0: no cap; default: the daemon's (240 s)")
    w.add_argument("--socket", metavar="PATH")
    w.add_argument("--json", action="store_true",
                   help="print the verdict object on stdout instead of the session's output")
    w.add_argument("--no-spawn", action="store_true", help="do not start verdictd; exit 3 instead")
    args = parser.parse_args(argv)  # usage errors exit 2, like verdict
    io = _Output()
    try:
        cap = None if args.cap is None else float(args.cap)
        _cap_ms(cap)
    except (ValueError, VerdictError):
        io.err("verdict: --cap %s must be a finite number of seconds >= 0 (0 waits without a cap)" % args.cap)
        return EXIT_BAD_USE
    session = _session_arg(args.session)
    try:
        verdict = wait(session, cap=cap, socket=args.socket, spawn=not args.no_spawn)
    except VerdictError as err:
        if args.json and err.reply is not None:
            io.out(json.dumps(err.reply, separators=(",", ":")).encode("utf-8") + b"\n")
        io.err("verdict: %s" % err.message)
        return err.exit
    streamed = False
    if args.json:
        # elapsed_ms from the client's start, like the marker's elapsed=.
        shown = json.loads(verdict["_raw"].decode("utf-8"))
        shown["elapsed_ms"] = verdict["_elapsed_ms"]
        io.out(json.dumps(shown, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")
    elif verdict["outcome"] == "completed" and verdict.get("_dir"):
        streamed = io.copy(os.path.join(verdict["_dir"], "stdout.log")) > 0
    if verdict["outcome"] == "completed" and not args.json:
        io.out(completed_marker(verdict).encode("utf-8") + b"\n")
    for line in render_markers(verdict, session, verdict["_elapsed_s"], streamed):
        io.err(line)
    return int(verdict["exit"])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
