// The test world: a real verdictd on its own socket in a temp dir, and
// session directories whose process is a real child named in daemon.pid.
// VERDICT_BIN_DIR names the directory of the verdictd binary (default:
// the workspace's target/debug).

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const binDir = process.env.VERDICT_BIN_DIR ?? join(here, "../../../target/debug");

/** Every wait in these tests ends by this deadline. */
export const DEADLINE_MS = 20_000;

/** Polls `check` until it returns something other than undefined. */
export async function eventually(what, check) {
  const deadline = Date.now() + DEADLINE_MS;
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/** Field 22 of /proc/<pid>/stat: the start time daemon.pid records. */
export function starttime(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** Writes `dir/name` the way csa does: a temp file renamed into place. */
export function writeAtomic(dir, name, contents) {
  const tmp = join(dir, `.${name.replaceAll("/", "_")}.tmp`);
  writeFileSync(tmp, contents);
  renameSync(tmp, join(dir, name));
}

/**
 * Whether the daemon at `socket` answers a ping. The probe is closed only
 * after the daemon has served it, so that its close reaches the daemon
 * before the next connection does (a daemon limited to one connection
 * would otherwise refuse the next one as busy).
 */
function answers(socket) {
  return new Promise((resolve) => {
    const stream = connect(socket);
    stream.setEncoding("utf8");
    let buffered = "";
    stream.once("connect", () => stream.write('{"v":1,"id":0,"op":"ping"}\n'));
    stream.on("data", (chunk) => {
      buffered += chunk;
      if (buffered.includes("\n")) {
        stream.destroy();
        resolve(buffered.includes('"event":"pong"'));
      }
    });
    stream.once("error", () => resolve(false));
    stream.once("close", () => resolve(false));
  });
}

export class World {
  constructor(config = "") {
    this.tmp = mkdtempSync(join(tmpdir(), "verdict-node-"));
    this.root = join(this.tmp, "root");
    mkdirSync(this.root);
    this.config = join(this.tmp, "verdictd.toml");
    writeFileSync(this.config, config);
    this.socket = join(this.tmp, "verdictd.sock");
    this.children = [];
  }

  static async start(config = "") {
    const world = new World(config);
    await world.startDaemon();
    return world;
  }

  async startDaemon() {
    const home = join(this.tmp, "home");
    const env = { ...process.env, HOME: home, XDG_STATE_HOME: join(home, "state"), XDG_CONFIG_HOME: join(home, "config") };
    for (const name of ["XDG_RUNTIME_DIR", "VERDICT_SOCKET", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"]) delete env[name];
    this.daemon = spawn(join(binDir, "verdictd"), ["--socket", this.socket, "--config", this.config, "--root", this.root], {
      env,
      stdio: ["ignore", "ignore", "ignore"],
    });
    const daemon = this.daemon;
    await eventually("verdictd to answer", async () => daemon.exitCode === null && (await answers(this.socket)));
  }

  async stopDaemon() {
    const daemon = this.daemon;
    const exited = new Promise((resolve) => daemon.once("exit", resolve));
    if (daemon.exitCode === null) daemon.kill("SIGTERM");
    await exited;
  }

  /** A session directory `root/<id>`, canonical. */
  session(id) {
    const dir = join(this.root, id);
    mkdirSync(dir, { recursive: true });
    return new Session(realpathSync(dir), this);
  }

  async close() {
    for (const child of this.children) child.kill("SIGKILL");
    if (this.daemon) await this.stopDaemon();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

export class Session {
  constructor(dir, world) {
    this.dir = dir;
    this.world = world;
    this.id = dir.split("/").pop();
  }

  write(name, contents) {
    writeAtomic(this.dir, name, contents);
  }

  writeResult(status, exitCode) {
    this.write("result.toml", `status = "${status}"\nexit_code = ${exitCode}\nsummary = "did the thing"\n`);
  }

  writePacket(status, exitCode) {
    this.write("daemon-completion.toml", `exit_code = ${exitCode}\nstatus = "${status}"\n`);
  }

  /** Starts the session's process, named in daemon.pid. */
  startProcess() {
    this.process = spawn("sleep", ["3600"], { stdio: "ignore" });
    this.world.children.push(this.process);
    this.write("daemon.pid", `${this.process.pid} ${starttime(this.process.pid)}\n`);
    return this.process.pid;
  }

  /** Kills the session's process and waits until it is reaped. */
  async endProcess() {
    const child = this.process;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  /** A session whose process ran and ended. */
  async ended() {
    this.startProcess();
    await this.endProcess();
    return this;
  }
}
