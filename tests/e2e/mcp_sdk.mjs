// verdict-mcp driven by the official TypeScript MCP SDK
// (@modelcontextprotocol/sdk, installed by scripts/test into
// target/node-mcp), with every schema compiled and every result
// validated by Ajv in strict mode. Run by tests/e2e/mcp.rs with:
//   NODE_MCP_MODULES  target/node-mcp/node_modules
//   VERDICT_MCP       the verdict-mcp binary
//   VERDICT_SOCKET    the daemon's socket
//   DONE, FAILED, LIVE, LIVE2   session directories
// Exits 0 when every check passes; otherwise prints what failed.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.NODE_MCP_MODULES;
const warnings = [];
for (const level of ["warn", "error"]) {
  const original = console[level];
  console[level] = (...args) => {
    warnings.push(args.map(String).join(" "));
    original(...args);
  };
}

const sdk = (path) => import(pathToFileURL(join(modules, "@modelcontextprotocol/sdk/dist/esm", path)).href);
const { Client } = await sdk("client/index.js");
const { StdioClientTransport } = await sdk("client/stdio.js");
const Ajv2020 = createRequire(join(modules, "x.js"))("ajv/dist/2020").default;
const { status: daemonStatus } = await import(new URL("../../clients/node/index.js", import.meta.url).href);

const socket = process.env.VERDICT_SOCKET;
const ajv = new Ajv2020({
  strict: true,
  allErrors: true,
  logger: { log: () => {}, warn: (m) => warnings.push(`ajv: ${m}`), error: (m) => warnings.push(`ajv: ${m}`) },
});

async function eventually(what, check) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const waiters = async () => (await daemonStatus({ socket })).waiters;

function connect() {
  const transport = new StdioClientTransport({
    command: process.env.VERDICT_MCP,
    args: ["--socket", socket, "--no-spawn"],
    stderr: "inherit",
  });
  const client = new Client({ name: "verdict-e2e", version: "1.0.0" });
  return { client, transport, ready: client.connect(transport) };
}

const { client, transport, ready } = connect();
await ready;

// The tools, their schemas compiled in strict mode.
const { tools } = await client.listTools();
assert.deepEqual(tools.map((t) => t.name).sort(), ["status", "wait"]);
const validate = {};
for (const tool of tools) {
  ajv.compile(tool.inputSchema);
  assert.ok(tool.outputSchema, `${tool.name} has an output schema`);
  validate[tool.name] = ajv.compile(tool.outputSchema);
}
const wait = tools.find((t) => t.name === "wait").inputSchema;
assert.equal(wait.properties.sessions.minItems, 1);
assert.equal(wait.properties.sessions.maxItems, 64);
assert.equal(wait.properties.timeout_seconds.exclusiveMinimum, 0);
assert.ok(wait.properties.timeout_seconds.maximum > 0);
assert.ok(!JSON.stringify(tools).includes('"format"'), "no format keyword is advertised");

async function call(name, args, options) {
  const result = await client.callTool({ name, arguments: args }, undefined, options);
  assert.ok(!result.isError, `${name} ${JSON.stringify(args)}: ${JSON.stringify(result)}`);
  const valid = validate[name](result.structuredContent);
  assert.ok(valid, `${name}: ${ajv.errorsText(validate[name].errors)}`);
  return result.structuredContent;
}

// Four ways to wait.
const done = await call("wait", { sessions: [process.env.DONE] });
assert.equal(done.done, true);
assert.equal(done.exit_code, 0);
assert.equal(done.sessions[0].outcome, "completed");
const failed = await call("wait", { sessions: [process.env.FAILED] });
assert.equal(failed.exit_code, 1);
const live = await call("wait", { sessions: [process.env.LIVE], timeout_seconds: 0.5 });
assert.equal(live.done, false);
assert.equal(live.sessions[0].outcome, "alive");
assert.equal(live.still_running.length, 1);
const any = await call("wait", { sessions: [process.env.LIVE, process.env.DONE], mode: "any" });
assert.equal(any.done, true);
assert.equal(any.sessions[1].outcome, "completed");
await call("status", {});

// Cancelled with an AbortSignal: the daemon drops the wait.
const controller = new AbortController();
const cancelled = client.callTool(
  { name: "wait", arguments: { sessions: [process.env.LIVE2], timeout_seconds: 40 } },
  undefined,
  { signal: controller.signal, timeout: 60_000 },
);
await eventually("the wait at the daemon", async () => (await waiters()) === 1);
controller.abort();
await assert.rejects(cancelled);
await eventually("the cancelled wait to be dropped", async () => (await waiters()) === 0);

// The client leaves mid-wait: the server stops its waits and exits.
const pid = transport.pid;
client.callTool({ name: "wait", arguments: { sessions: [process.env.LIVE2], timeout_seconds: 40 } }).catch(() => {});
await eventually("the second wait at the daemon", async () => (await waiters()) === 1);
const closed = Date.now();
await client.close();
const alive = () => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
await eventually("verdict-mcp to exit", () => !alive());
const exitedAfter = Date.now() - closed;
await eventually("the left wait to be dropped", async () => (await waiters()) === 0);

assert.deepEqual(warnings, [], "no warnings from the SDK or Ajv");
console.log(JSON.stringify({ ok: true, checks: tools.length + 9, exited_after_close_ms: exitedAfter }));
process.exit(0);
