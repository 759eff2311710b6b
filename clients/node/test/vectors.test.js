// Replays every conformance vector (proto/tests/vectors/, PROTOCOL.md §10)
// against a real verdictd, over raw connections, comparing each reply
// line byte for byte after the normalisation §10 gives.

import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { DEADLINE_MS, World, eventually } from "./harness.js";
import { status } from "../index.js";

const vectors = join(dirname(fileURLToPath(import.meta.url)), "../../../proto/tests/vectors");

/** A raw protocol connection: lines in, lines out. */
class Raw {
  static open(socket) {
    return new Promise((resolve, reject) => {
      const raw = new Raw();
      raw.stream = connect(socket);
      raw.stream.setEncoding("utf8");
      raw.stream.once("connect", () => resolve(raw));
      raw.stream.once("error", reject);
      raw.stream.on("data", (chunk) => {
        raw.buffered += chunk;
        raw.wake();
      });
      raw.stream.on("close", () => {
        raw.closed = true;
        raw.wake();
      });
    });
  }

  constructor() {
    this.buffered = "";
    this.closed = false;
    this.wake = () => {};
  }

  send(line) {
    this.stream.write(line + "\n");
  }

  async until(ready, what) {
    const deadline = Date.now() + DEADLINE_MS;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  async recv() {
    await this.until(() => this.buffered.includes("\n") || this.closed, "a reply");
    const newline = this.buffered.indexOf("\n");
    assert.ok(newline >= 0, "the daemon closed the connection instead of replying");
    const line = this.buffered.slice(0, newline);
    this.buffered = this.buffered.slice(newline + 1);
    return line;
  }

  async isClosed() {
    await this.until(() => this.closed, "the daemon to close the connection");
    return true;
  }
}

/** §10: paths become placeholders; pids, times and the version are fixed. */
function normalise(line, paths) {
  for (const [path, placeholder] of paths) line = line.replaceAll(path, placeholder);
  return line
    .replace(/"pid":\d+/g, '"pid":0')
    .replace(/"(elapsed_ms|uptime_ms)":\d+/g, '"$1":0')
    .replace(/"version":"[^"]*"/g, '"version":"$VERSION"');
}

async function replay(file) {
  const vector = JSON.parse(readFileSync(join(vectors, file), "utf8"));
  const world = await World.start(vector.config ?? "");
  try {
    const spec = vector.session ?? {};
    const session = world.session(spec.id ?? "01JVECTOR");
    const later = spec.create === "later";
    if (later) rmSync(session.dir, { recursive: true });
    if (spec.process === "alive" && !later) session.startProcess();
    for (const [name, contents] of Object.entries(spec.files ?? {})) session.write(name, contents);
    const root = world.root;
    const dir = join(realpathSync(root), spec.id ?? "01JVECTOR");
    const paths = [
      [dir, "$SESSION"],
      [root, "$ROOT"],
      [world.tmp, "$TMP"],
    ];
    const conns = [];
    for (const [index, step] of vector.steps.entries()) {
      const at = `${file} step ${index}`;
      const n = step.conn ?? 1;
      conns[n - 1] ??= await Raw.open(world.socket);
      const conn = conns[n - 1];
      if (step.send !== undefined) {
        conn.send(step.send.replaceAll("$SESSION", dir).replaceAll("$ROOT", root));
      } else if (step.send_long !== undefined) {
        conn.send(`{"v":1,"id":1,"op":"ping","pad":"${"x".repeat(step.send_long)}"}`);
      } else if (step.recv !== undefined) {
        assert.equal(normalise(await conn.recv(), paths), step.recv, at);
      } else if (step.closed !== undefined) {
        assert.ok(await conn.isClosed(), at);
      } else if (step.do === "end_process") {
        await session.endProcess();
      } else if (step.do === "create_session") {
        mkdirSync(session.dir, { recursive: true });
        session.startProcess();
      } else if (step.do === "remove_session") {
        rmSync(session.dir, { recursive: true });
      } else if (step.do === "wait_for_waiters") {
        await eventually(`${step.n ?? 1} waiters`, async () => (await status({ socket: world.socket })).waiters === (step.n ?? 1));
      } else {
        assert.fail(`${at}: unknown step ${JSON.stringify(step)}`);
      }
    }
    for (const conn of conns) conn?.stream.destroy();
  } finally {
    await world.close();
  }
}

const files = readdirSync(vectors).filter((name) => name.endsWith(".json")).sort();

test("every conformance vector is here", () => assert.ok(files.length >= 28, `${files.length} vectors`));

for (const file of files) {
  test(`vector ${file}`, () => replay(file));
}
