// The Node client against a real verdictd: each case in its own world.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Exit, UnreachableError, VerdictError, events, exitCode, socketPath, status, wait, waitMany, worstExit } from "../index.js";
import { World, eventually } from "./harness.js";

async function inWorld(run) {
  const world = await World.start();
  try {
    await run(world);
  } finally {
    await world.close();
  }
}

const waiters = async (world) => (await status({ socket: world.socket })).waiters;

test("a finished session's verdict, exit 0", () =>
  inWorld(async (world) => {
    const s = await world.session("01JNODEDONE").ended();
    s.writeResult("success", 0);
    const verdict = await wait(s.dir, { socket: world.socket });
    assert.equal(verdict.event, "verdict");
    assert.equal(verdict.outcome, "completed");
    assert.equal(verdict.status, "success");
    assert.equal(verdict.summary, "did the thing");
    assert.equal(exitCode(verdict), Exit.SUCCESS);
  }));

test("a failed session by id: exit 1", () =>
  inWorld(async (world) => {
    const s = await world.session("01JNODEFAIL").ended();
    s.writeResult("failure", 3);
    const verdict = await wait("01JNODEFAIL", { socket: world.socket });
    assert.equal(verdict.exit_code, 3);
    assert.equal(exitCode(verdict), Exit.FAILURE);
  }));

test("a live session at the cap is KV-warm, exit 0", () =>
  inWorld(async (world) => {
    const s = world.session("01JNODELIVE");
    s.startProcess();
    const verdict = await wait(s.dir, { socket: world.socket, cap: 0.3 });
    assert.equal(verdict.outcome, "kv_warm");
    assert.equal(exitCode(verdict), Exit.SUCCESS);
  }));

test("an unknown session is a usage error, exit 2", () =>
  inWorld(async (world) => {
    await assert.rejects(wait("01JNOSUCHSESSION", { socket: world.socket }), (err) => {
      assert.ok(err instanceof VerdictError);
      assert.equal(err.code, "unknown_session");
      assert.equal(exitCode(err), Exit.USAGE);
      return true;
    });
  }));

test("no daemon is exit 3, naming the socket", async () => {
  const world = new World();
  try {
    await assert.rejects(wait("01JX", { socket: world.socket }), (err) => {
      assert.ok(err instanceof UnreachableError);
      assert.match(err.message, /verdictd\.sock/);
      assert.equal(exitCode(err), Exit.UNREACHABLE);
      return true;
    });
  } finally {
    await world.close();
  }
});

test("mode any: the first to end answers, the other waits are dropped at the daemon", () =>
  inWorld(async (world) => {
    const a = world.session("01JNODEANYA");
    const b = world.session("01JNODEANYB");
    a.startProcess();
    b.startProcess();
    const answers = [];
    const iterating = (async () => {
      for await (const answer of waitMany([a.dir, b.dir], { mode: "any", socket: world.socket, cap: 0 })) {
        answers.push(answer);
      }
    })();
    await eventually("both waits", async () => (await waiters(world)) === 2);
    b.writeResult("success", 0);
    await b.endProcess();
    await iterating;
    assert.equal(answers.length, 1);
    assert.equal(answers[0].index, 1);
    assert.equal(answers[0].verdict.outcome, "completed");
    await eventually("the other wait to be dropped", async () => (await waiters(world)) === 0);
  }));

test("an AbortSignal cancels a wait at the daemon", () =>
  inWorld(async (world) => {
    const s = world.session("01JNODEABORT");
    s.startProcess();
    const controller = new AbortController();
    const waiting = wait(s.dir, { socket: world.socket, cap: 0, signal: controller.signal });
    await eventually("the wait", async () => (await waiters(world)) === 1);
    controller.abort();
    await assert.rejects(waiting);
    await eventually("the wait to be cancelled", async () => (await waiters(world)) === 0);
  }));

test("a wait survives a daemon restart", () =>
  inWorld(async (world) => {
    const s = world.session("01JNODERESTART");
    s.startProcess();
    const waiting = wait(s.dir, { socket: world.socket, cap: 0 });
    await eventually("the wait", async () => (await waiters(world)) === 1);
    await world.stopDaemon();
    await world.startDaemon();
    await eventually("the wait, sent again", async () => (await waiters(world)) === 1);
    s.writeResult("success", 0);
    await s.endProcess();
    const verdict = await waiting;
    assert.equal(verdict.outcome, "completed");
    assert.equal(verdict.source, "result");
  }));

test("events: a session starting and ending", () =>
  inWorld(async (world) => {
    const controller = new AbortController();
    const seen = [];
    const following = (async () => {
      for await (const event of events({ socket: world.socket, signal: controller.signal })) {
        seen.push(event);
        if (event.event === "verdict") controller.abort();
      }
    })();
    try {
      await eventually("the subscription", () => seen.some((e) => e.event === "subscribed"));
      // csa's layout: <root>/<project>/sessions/<ID>.
      const s = world.session("proj/sessions/01JNODEEVENTS");
      s.startProcess();
      await eventually("started", () => seen.some((e) => e.event === "started"));
      s.writeResult("success", 0);
      await s.endProcess();
      await following;
    } finally {
      controller.abort();
    }
    const end = seen.find((e) => e.event === "verdict");
    assert.equal(end.session, "01JNODEEVENTS");
    assert.equal(end.status, "success");
  }));

test("exit codes combine as verdict wait combines them", () => {
  assert.equal(worstExit([Exit.SUCCESS, Exit.TIMEOUT]), Exit.TIMEOUT);
  assert.equal(worstExit([Exit.TIMEOUT, Exit.FAILURE]), Exit.FAILURE);
  assert.equal(worstExit([Exit.FAILURE, Exit.UNREACHABLE, Exit.USAGE]), Exit.USAGE);
  assert.equal(worstExit([]), Exit.SUCCESS);
});

test("the socket is found as the Rust client finds it", () => {
  const saved = { ...process.env };
  try {
    assert.equal(socketPath("/given.sock"), "/given.sock");
    process.env.VERDICT_SOCKET = "/env.sock";
    assert.equal(socketPath(), "/env.sock");
    delete process.env.VERDICT_SOCKET;
    process.env.XDG_RUNTIME_DIR = "/run/user/7";
    assert.equal(socketPath(), "/run/user/7/verdictd.sock");
    delete process.env.XDG_RUNTIME_DIR;
    assert.equal(socketPath(), `/tmp/verdictd-${process.getuid()}/verdictd.sock`);
  } finally {
    process.env = saved;
  }
});
