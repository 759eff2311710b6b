// verdict-client: wait for agent sub-sessions through verdictd, from Node.
//
// The protocol is PROTOCOL.md's (line-delimited JSON over a Unix socket);
// this module needs nothing but `node:net`. It does not start verdictd:
// run `verdict wait` once, or the systemd/launchd unit, for that.

import { createConnection } from "node:net";
import { join } from "node:path";

/** Exit codes, as `verdict wait` returns them. */
export const Exit = Object.freeze({
  SUCCESS: 0,
  FAILURE: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  TIMEOUT: 124,
});

// Success < Timeout < Failure < Unreachable < Usage: the worst one wins.
const RANK = [Exit.SUCCESS, Exit.TIMEOUT, Exit.FAILURE, Exit.UNREACHABLE, Exit.USAGE];

/** The worse of exit codes, as `verdict wait S1 S2 …` combines them. */
export function worstExit(codes) {
  let worst = Exit.SUCCESS;
  for (const code of codes) {
    if (RANK.indexOf(code) > RANK.indexOf(worst)) worst = code;
  }
  return worst;
}

/** The longest reply line read (a verdict with a long summary fits). */
const MAX_LINE_BYTES = 1 << 20;

/** How long a lost daemon is given to come back before a wait fails. */
const RECONNECT_MS = 10_000;

/**
 * The daemon's socket, found as the Rust client finds it: `socket`,
 * `$VERDICT_SOCKET`, `$XDG_RUNTIME_DIR/verdictd.sock`,
 * `/tmp/verdictd-<uid>/verdictd.sock`.
 */
export function socketPath(socket) {
  if (socket) return socket;
  if (process.env.VERDICT_SOCKET) return process.env.VERDICT_SOCKET;
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, "verdictd.sock");
  return `/tmp/verdictd-${process.getuid()}/verdictd.sock`;
}

/** A reply that is an `error` event, as an Error. */
export class VerdictError extends Error {
  constructor(reply, session) {
    super(reply.message ?? `verdictd refused the request (${reply.code})`);
    this.name = "VerdictError";
    /** The protocol's error code (`unknown_session`, `busy`, …). */
    this.code = reply.code;
    /** The session asked about, when there was one. */
    this.session = session;
    /** The reply as the daemon sent it. */
    this.reply = reply;
  }
}

/** The daemon could not be reached (or went away and did not come back). */
export class UnreachableError extends Error {
  constructor(socket, cause) {
    super(`verdictd is not reachable at ${socket}: ${cause?.message ?? cause}`);
    this.name = "UnreachableError";
    this.socket = socket;
    this.cause = cause;
  }
}

/**
 * The exit code `verdict wait` returns for what a wait resolved or
 * rejected with: a verdict's `exit`, or the code of an error.
 */
export function exitCode(answer) {
  if (answer instanceof UnreachableError) return Exit.UNREACHABLE;
  if (answer instanceof VerdictError) {
    switch (answer.code) {
      case "unknown_session":
      case "bad_request":
        return Exit.USAGE;
      case "session_removed":
        return Exit.FAILURE;
      default:
        return Exit.UNREACHABLE;
    }
  }
  if (answer && typeof answer.exit === "number") return answer.exit;
  return Exit.UNREACHABLE;
}

/** One connection: lines out, replies routed by id. */
class Connection {
  constructor(socket) {
    this.socket = socket;
    this.handlers = new Map();
    this.closed = false;
    this.onClose = () => {};
  }

  open() {
    return new Promise((resolve, reject) => {
      const stream = createConnection(this.socket);
      let buffered = "";
      stream.setEncoding("utf8");
      stream.once("connect", () => {
        this.stream = stream;
        resolve(this);
      });
      stream.on("data", (chunk) => {
        buffered += chunk;
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          this.deliver(line);
        }
        if (buffered.length > MAX_LINE_BYTES) {
          stream.destroy(new Error(`a reply line is longer than ${MAX_LINE_BYTES} bytes`));
        }
      });
      stream.on("error", (err) => {
        if (!this.stream) reject(new UnreachableError(this.socket, err));
      });
      stream.on("close", () => {
        this.closed = true;
        this.onClose();
      });
    });
  }

  deliver(line) {
    if (line.trim() === "") return;
    let reply;
    try {
      reply = JSON.parse(line);
    } catch {
      return; // not a reply: skipped, as unknown events are
    }
    const handler = this.handlers.get(JSON.stringify(reply.id));
    if (handler) handler(reply);
  }

  /** Sends `request`; `handler` gets every reply carrying its id. */
  request(request, handler) {
    this.handlers.set(JSON.stringify(request.id), handler);
    this.stream.write(JSON.stringify({ v: 1, ...request }) + "\n");
  }

  forget(id) {
    this.handlers.delete(JSON.stringify(id));
  }

  close() {
    this.closed = true;
    this.stream?.end();
    this.stream?.destroy();
  }
}

async function connect(socket) {
  return new Connection(socketPath(socket)).open();
}

/** Connects, retrying until `deadline` (a daemon being restarted). */
async function reconnect(socket, deadline) {
  for (;;) {
    try {
      return await connect(socket);
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** `cap` in seconds (number) → `cap_ms` (a positive cap stays positive). */
function capMs(cap) {
  if (cap === undefined || cap === null) return undefined;
  if (!(typeof cap === "number" && cap >= 0 && Number.isFinite(cap))) {
    throw new TypeError(`cap must be a number of seconds >= 0, not ${cap}`);
  }
  return cap === 0 ? 0 : Math.max(1, Math.ceil(cap * 1000));
}

/** An absolute path as given; anything else is an id or a prefix. */
function sessionArg(session) {
  if (typeof session !== "string" || session === "") {
    throw new TypeError("a session is a non-empty string: an id, a prefix or an absolute path");
  }
  return session;
}

/**
 * Waits for every one of `sessions`, yielding each answer as it arrives:
 * `{ index, session, verdict }` or `{ index, session, error }`. With
 * `mode: "any"` it stops after the first completed session and cancels
 * the others at the daemon. Survives a daemon restart (the waits are sent
 * again with what is left of the cap). `signal` (an AbortSignal) cancels
 * every wait still in flight.
 */
export async function* waitMany(sessions, { mode = "all", cap, socket, signal, cwd } = {}) {
  if (mode !== "all" && mode !== "any") throw new TypeError(`mode is "all" or "any", not ${mode}`);
  const args = sessions.map(sessionArg);
  const started = Date.now();
  const cap_ms = capMs(cap);
  const pending = new Set(args.map((_, i) => i));
  const queue = [];
  let wake = () => {};
  let lost = null;
  let conn = await connect(socket).catch((err) => {
    throw err instanceof UnreachableError ? err : new UnreachableError(socketPath(socket), err);
  });
  const push = (item) => {
    queue.push(item);
    wake();
  };
  const send = () => {
    const left = cap_ms === undefined || cap_ms === 0 ? cap_ms : Math.max(1, cap_ms - (Date.now() - started));
    conn.onClose = () => {
      lost = lost ?? "closed";
      wake();
    };
    for (const index of pending) {
      const request = { id: index + 1, op: "wait", session: args[index] };
      if (left !== undefined) request.cap_ms = left;
      if (cwd) request.cwd = cwd;
      conn.request(request, (reply) => {
        if (reply.event === "verdict" || reply.event === "error") push({ index, reply });
      });
    }
  };
  const abort = () => {
    for (const index of pending) {
      if (!conn.closed) conn.request({ id: `cancel-${index + 1}`, op: "cancel", target: index + 1 }, () => {});
    }
    wake();
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    send();
    while (pending.size > 0) {
      if (signal?.aborted) throw signal.reason ?? new Error("aborted");
      if (queue.length === 0 && lost) {
        // The daemon went away: send the waits still pending again.
        lost = null;
        try {
          conn = await reconnect(socket, Date.now() + RECONNECT_MS);
        } catch (err) {
          throw new UnreachableError(socketPath(socket), err);
        }
        send();
        continue;
      }
      if (queue.length === 0) {
        await new Promise((resolve) => (wake = resolve));
        continue;
      }
      const { index, reply } = queue.shift();
      if (!pending.delete(index)) continue;
      const session = args[index];
      if (reply.event === "error") {
        yield { index, session, error: new VerdictError(reply, session) };
      } else {
        yield { index, session, verdict: reply };
        if (mode === "any" && reply.outcome === "completed") break;
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    // Waits not answered are cancelled at the daemon by closing.
    conn.close();
  }
}

/**
 * Waits for one session; resolves to its verdict (the reply line that
 * `verdict wait --json` prints, parsed), rejects with a VerdictError or an
 * UnreachableError. `cap` is in seconds (0: none; absent: the daemon's
 * default).
 */
export async function wait(session, options = {}) {
  for await (const answer of waitMany([session], options)) {
    if (answer.error) throw answer.error;
    return answer.verdict;
  }
  throw new UnreachableError(socketPath(options.socket), "no answer");
}

/**
 * The daemon's events as they happen (`started`, `verdict`, …), across
 * daemon restarts; `under` limits them to directories, `signal` ends it.
 */
export async function* events({ socket, under, signal } = {}) {
  const queue = [];
  let wake = () => {};
  let lost = false;
  let conn = null;
  const subscribe = async () => {
    conn = await reconnect(socket, Date.now() + RECONNECT_MS).catch((err) => {
      throw new UnreachableError(socketPath(socket), err);
    });
    conn.onClose = () => {
      lost = true;
      wake();
    };
    const request = { id: "events", op: "subscribe" };
    if (under) request.under = under;
    conn.request(request, (reply) => {
      queue.push(reply);
      wake();
    });
  };
  const stop = () => wake();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    await subscribe();
    for (;;) {
      if (signal?.aborted) return;
      if (queue.length > 0) {
        const reply = queue.shift();
        if (reply.event === "error") throw new VerdictError(reply);
        yield reply;
        continue;
      }
      if (lost) {
        lost = false;
        await subscribe();
        continue;
      }
      await new Promise((resolve) => (wake = resolve));
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    conn?.close();
  }
}

/** The daemon's counters (the `status` reply). */
export async function status({ socket } = {}) {
  const conn = await connect(socket);
  try {
    return await new Promise((resolve, reject) => {
      conn.onClose = () => reject(new UnreachableError(conn.socket, "closed"));
      conn.request({ id: "status", op: "status" }, (reply) =>
        reply.event === "error" ? reject(new VerdictError(reply)) : resolve(reply),
      );
    });
  } finally {
    conn.close();
  }
}
