"""A real MCP client (the Python `mcp` SDK) driving `verdict-mcp` for the
end-to-end tests: commands on stdin, one JSON line per answer on stdout.

    {"op": "list"}                                  -> {"tools": [...]}
    {"op": "call", "tag": T, "tool": N, "args": A}  -> {"tag": T, "is_error": B, "structured": S, "text": [...]}
                                                       (when the call ends; calls run concurrently)
    {"op": "cancel", "tag": T}                      -> {"tag": T, "cancelled": true}

usage: mcp_client.py SERVER [ARGS...]
"""

import json
import os
import sys

import anyio
from mcp import Client, StdioServerParameters


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    server = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with Client(server) as client:
        scopes = {}

        async def call(tag, tool, args):
            with anyio.CancelScope() as scope:
                scopes[tag] = scope
                try:
                    result = await client.call_tool(tool, args)
                except Exception as error:  # a protocol-level error: report it, keep serving
                    emit({"tag": tag, "exception": str(error)})
                    return
                text = [block.text for block in result.content if getattr(block, "text", None) is not None]
                emit({"tag": tag, "is_error": result.is_error, "structured": result.structured_content, "text": text})
                return
            emit({"tag": tag, "cancelled": True})

        async with anyio.create_task_group() as group:
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    break
                command = json.loads(line)
                if command["op"] == "list":
                    listed = await client.list_tools()
                    emit({"tools": [
                        {"name": t.name, "description": t.description, "input": t.input_schema}
                        for t in listed.tools
                    ]})
                elif command["op"] == "call":
                    group.start_soon(call, command["tag"], command["tool"], command.get("args", {}))
                elif command["op"] == "cancel":
                    scopes[command["tag"]].cancel()
            group.cancel_scope.cancel()


anyio.run(main)
