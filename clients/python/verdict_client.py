#!/usr/bin/env python3
"""A client for verdictd in one file, Python 3.9+ standard library only.

As a module::

    import verdict_client
    verdict = verdict_client.wait("/path/to/session", cap=60)
    print(verdict["outcome"], verdict["exit"])

As a command, a drop-in for ``verdict wait`` (same exit codes, same marker
lines on stderr)::

    python3 verdict_client.py wait <SESSION> [--cap S] [--socket P] [--json] [--no-spawn]

The protocol is documented in PROTOCOL.md; this file follows it and nothing
else. If the daemon goes away mid-wait, the client reconnects (starting
``verdictd`` from PATH if nothing listens, unless told not to) and waits for
what is left of the cap.
"""

import argparse
import errno
import json
import os
import shutil
import socket as socketlib
import subprocess
import sys
import time

__all__ = ["wait", "socket_path", "VerdictError", "render_markers"]

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 64 * 1024
SPAWN_DEADLINE_S = 10.0
MAX_FAILED_RECONNECTS = 5

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


def _absolute(path):
    """Absolute without touching the filesystem: drop "." and empty parts,
    keep "..", like the Rust client."""
    if not path.startswith("/"):
        path = os.getcwd() + "/" + path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def _session_arg(session):
    if "/" in session or session in (".", ".."):
        return _absolute(session)
    return session


def _nobody_listens(err):
    return err.errno in (errno.ENOENT, errno.ECONNREFUSED)


def _start_daemon(path):
    binary = os.environ.get("VERDICTD") or shutil.which("verdictd")
    if not binary:
        raise VerdictError("verdictd is not running at %s and is not on PATH; start it" % path)
    directory = os.path.dirname(path)
    if directory == "/tmp/verdictd-%d" % os.getuid():
        os.makedirs(directory, mode=0o700, exist_ok=True)
    elif not os.path.isdir(directory):
        raise VerdictError("cannot start verdictd: the socket directory %s does not exist" % directory)
    log = open(path + ".log", "ab")
    try:
        return subprocess.Popen(
            [binary, "--socket", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    finally:
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
    try:
        return _try_connect(path)
    except OSError as err:
        if not _nobody_listens(err):
            raise VerdictError("cannot connect to verdictd at %s: %s" % (path, err))
        if not spawn:
            raise VerdictError("verdictd is not running at %s (%s); start it, or drop --no-spawn" % (path, err))
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
                yield json.loads(line.decode("utf-8")), line
            continue
        if len(buf) > MAX_LINE_BYTES:
            raise VerdictError("protocol error: a reply line is longer than %d bytes" % MAX_LINE_BYTES)
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk


_ERROR_EXITS = {"unknown_session": EXIT_BAD_USE, "bad_request": EXIT_BAD_USE, "session_removed": 1}


def _attempt(sock, session, cap_ms, state):
    request = {"v": PROTOCOL_VERSION, "id": 1, "op": "wait", "session": session}
    if cap_ms is not None:
        request["cap_ms"] = cap_ms
    sock.sendall(json.dumps(request, separators=(",", ":")).encode("utf-8") + b"\n")
    for reply, raw in _lines(sock):
        if reply.get("id") != 1:
            continue
        event = reply.get("event")
        if event == "watching":
            state["watched"] = True
            if state["cap_ms"] is None:
                state["cap_ms"] = reply.get("cap_ms")
        elif event == "verdict":
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
    if cap is not None and not cap >= 0:
        raise VerdictError("cap must be a number of seconds >= 0", "bad_request", EXIT_BAD_USE)
    session = _session_arg(session)
    path = socket_path(socket)
    started = time.monotonic()
    state = {"cap_ms": None if cap is None else int(round(cap * 1000)), "watched": False}
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
        except OSError as err:
            verdict, why = None, str(err)
        except ValueError as err:
            raise VerdictError("protocol error: %s" % err)
        finally:
            sock.close()
        if verdict is not None:
            verdict["_elapsed_s"] = int(time.monotonic() - started)
            return verdict
        failures = 1 if state["watched"] else failures + 1
        if failures > MAX_FAILED_RECONNECTS:
            raise VerdictError("lost the connection to verdictd at %s (%s); giving up" % (path, why))


def _attr(value):
    return value.replace('"', "&quot;")


def render_markers(verdict, session_arg, elapsed_s):
    """The sentence and csa marker lines ``verdict wait`` prints."""
    sid = verdict["session"]
    cmd = _attr("verdict wait %s" % session_arg)
    outcome = verdict["outcome"]
    if outcome == "completed":
        code = verdict.get("exit_code", 1)
        synthetic = bool(verdict.get("synthetic", False))
        if synthetic and verdict.get("reason") == "empty_success":
            sentence = ("Session %s failed: its completion packet claims success, "
                        "but it wrote no result.toml and no output." % sid)
        elif synthetic:
            sentence = "Session %s failed: its process exited without writing result.toml or a completion packet." % sid
        else:
            source = {"result": "result.toml", "packet": "the completion packet"}.get(
                verdict.get("source"), "the session files")
            sentence = "Session %s completed: %s (exit code %d, from %s)." % (sid, verdict["status"], code, source)
        marker = "<!-- CSA:SESSION_WAIT_COMPLETED session=%s status=%s exit=%d synthetic=%s -->" % (
            sid, verdict["status"], code, "true" if synthetic else "false")
        return [sentence, marker]
    if outcome == "kv_warm":
        return [
            "Session %s is still running after %ds; wait again with: verdict wait %s" % (sid, elapsed_s, session_arg),
            '<!-- CSA:SESSION_WAIT_KV_WARM session=%s status=alive elapsed=%ds action=re-wait cmd="%s" -->'
            % (sid, elapsed_s, cmd),
            '<!-- CSA:CALLER_HINT action="retry_wait" reason="kv_warm" session=%s cmd="%s" -->' % (sid, cmd),
        ]
    return [
        "Session %s has no verdict after %ds and no live process." % (sid, elapsed_s),
        '<!-- CSA:SESSION_WAIT_TIMEOUT session=%s elapsed=%ds status=dead cmd="%s" -->' % (sid, elapsed_s, cmd),
    ]


def _main(argv):
    parser = argparse.ArgumentParser(prog="verdict_client.py", description="Wait for a session's verdict from verdictd.")
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("wait", help="block until SESSION has a verdict")
    w.add_argument("session", help="session directory or id")
    w.add_argument("--cap", type=float, metavar="SECONDS", help="0: no cap; default: the daemon's (240 s)")
    w.add_argument("--socket", metavar="PATH")
    w.add_argument("--json", action="store_true", help="also print the verdict object on stdout")
    w.add_argument("--no-spawn", action="store_true", help="do not start verdictd; exit 3 instead")
    args = parser.parse_args(argv)  # usage errors exit 2, like verdict
    if args.cap is not None and not args.cap >= 0:
        print("verdict: --cap %s is not a number of seconds >= 0" % args.cap, file=sys.stderr)
        return EXIT_BAD_USE
    session = _session_arg(args.session)
    try:
        verdict = wait(session, cap=args.cap, socket=args.socket, spawn=not args.no_spawn)
    except VerdictError as err:
        if args.json and err.reply is not None:
            print(json.dumps(err.reply, separators=(",", ":")))
        print("verdict: %s" % err.message, file=sys.stderr)
        return err.exit
    if args.json:
        sys.stdout.write(verdict["_raw"].decode("utf-8") + "\n")
        sys.stdout.flush()
    for line in render_markers(verdict, session, verdict["_elapsed_s"]):
        print(line, file=sys.stderr)
    return int(verdict["exit"])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
