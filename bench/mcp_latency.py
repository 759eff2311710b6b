"""Session exit -> answer, side by side in one run: an MCP `wait` tool
call (verdict-mcp, driven by the Python `mcp` SDK) and a `verdict wait`
process, taking turns round by round against one verdictd.

    target/mcp-venv/bin/python bench/mcp_latency.py [ROUNDS]

Build first (`cargo build --release`); `scripts/test --install-only`
makes the venv. Each round: a session whose process (`sleep`) runs, a
waiter armed (the daemon counts it), then result.toml renamed in and the
process killed; the clock runs from the kill to the answer (the tool
result in Python; the `verdict wait` process's exit). Prints p50/p90/p99.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import anyio
from mcp import Client, StdioServerParameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def status(sock_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        s.sendall(b'{"v":1,"id":1,"op":"status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            data += s.recv(65536)
    return json.loads(data)


def until_waiters(sock_path, n):
    deadline = time.monotonic() + 20
    while status(sock_path)["waiters"] != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {n} waiters")
        time.sleep(0.0005)


def new_session(root, name):
    d = os.path.join(root, name)
    os.makedirs(d)
    proc = subprocess.Popen(["sleep", "600"])
    with open(os.path.join(d, "daemon.pid"), "w") as f:
        f.write(f"{proc.pid}\n")
    return d, proc


def end_session(d, proc):
    tmp = os.path.join(d, ".result.tmp")
    with open(tmp, "w") as f:
        f.write('status = "success"\nexit_code = 0\n')
    os.rename(tmp, os.path.join(d, "result.toml"))
    t = time.perf_counter()
    proc.kill()
    proc.wait()
    return t


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


async def main(rounds):
    tmp = tempfile.mkdtemp(prefix="verdict-mcp-bench")
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    sock = os.path.join(tmp, "verdictd.sock")
    daemon = subprocess.Popen([os.path.join(BIN, "verdictd"), "--socket", sock, "--root", root],
                              stderr=subprocess.DEVNULL)
    while not os.path.exists(sock):
        time.sleep(0.01)
    server = StdioServerParameters(command=os.path.join(BIN, "verdict-mcp"),
                                   args=["--socket", sock, "--no-spawn"], env=dict(os.environ))
    mcp_ms, cli_ms = [], []
    async with Client(server) as client:
        for i in range(rounds):
            # MCP tool call.
            d, proc = new_session(root, f"m{i}")
            result = {}

            async def call():
                result["r"] = await client.call_tool("wait", {"sessions": [d], "timeout_seconds": 30})
                result["t"] = time.perf_counter()

            async with anyio.create_task_group() as group:
                group.start_soon(call)
                await anyio.to_thread.run_sync(until_waiters, sock, 1)
                t0 = end_session(d, proc)
            assert result["r"].structured_content["sessions"][0]["outcome"] == "completed"
            mcp_ms.append((result["t"] - t0) * 1000)
            until_waiters(sock, 0)
            # verdict wait process.
            d, proc = new_session(root, f"c{i}")
            waiter = subprocess.Popen([os.path.join(BIN, "verdict"), "wait", d, "--socket", sock, "--no-spawn"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            until_waiters(sock, 1)
            t0 = end_session(d, proc)
            waiter.wait()
            cli_ms.append((time.perf_counter() - t0) * 1000)
            until_waiters(sock, 0)
    daemon.terminate()
    daemon.wait()
    for name, samples in (("MCP wait tool call", mcp_ms), ("verdict wait process", cli_ms)):
        print(f"{name:22} n={len(samples)} p50={pct(samples, 50):.2f} ms p90={pct(samples, 90):.2f} ms "
              f"p99={pct(samples, 99):.2f} ms")
    print(f"ratio p50 {pct(mcp_ms, 50) / pct(cli_ms, 50):.2f}x")


anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 100)
