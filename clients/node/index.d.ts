/** Exit codes, as `verdict wait` returns them. */
export declare const Exit: Readonly<{
  SUCCESS: 0;
  FAILURE: 1;
  USAGE: 2;
  UNREACHABLE: 3;
  TIMEOUT: 124;
}>;

export type ExitCode = 0 | 1 | 2 | 3 | 124;

/** A `verdict` reply, as `verdict wait --json` prints it (fields may be added). */
export interface Verdict {
  v: 1;
  id: unknown;
  event: "verdict";
  /** `completed`, `kv_warm` (alive at the cap) or `timeout`. */
  outcome: "completed" | "kv_warm" | "timeout" | string;
  session: string;
  /** `success`, `failure`, `signal`, … (`alive`/`dead` at the cap). */
  status: string;
  /** The session's own exit code, when it reported one. */
  exit_code?: number;
  /** Which file decided: `result`, `packet`, `legacy` or `none`. */
  source?: string;
  /** True when no file said how it ended and the rules made it up. */
  synthetic?: boolean;
  summary?: string;
  reason?: string;
  pid?: number;
  notes?: string[];
  /** The exit code `verdict wait` returns for this verdict. */
  exit: ExitCode;
  elapsed_ms: number;
  [field: string]: unknown;
}

/** An `error` reply, as an Error. */
export declare class VerdictError extends Error {
  /** `unknown_session`, `bad_request`, `session_removed`, `busy`, … */
  code: string;
  session?: string;
  reply: Record<string, unknown>;
}

/** The daemon could not be reached, or went away and did not come back. */
export declare class UnreachableError extends Error {
  socket: string;
}

export interface Options {
  /** The daemon's socket (default: found as the Rust client finds it). */
  socket?: string;
  /** Give up after this many seconds (0: never; absent: the daemon's default). */
  cap?: number;
  /** Cancels the wait at the daemon. */
  signal?: AbortSignal;
  /** The caller's working directory, for csa's id lookup. */
  cwd?: string;
}

export interface ManyOptions extends Options {
  /** `all` (default): every session; `any`: stop at the first completed. */
  mode?: "all" | "any";
}

export type Answer =
  | { index: number; session: string; verdict: Verdict; error?: undefined }
  | { index: number; session: string; error: VerdictError; verdict?: undefined };

/** `socket`, `$VERDICT_SOCKET`, `$XDG_RUNTIME_DIR/verdictd.sock`, `/tmp/verdictd-<uid>/verdictd.sock`. */
export declare function socketPath(socket?: string): string;
/** Waits for one session (an id, a unique prefix, or an absolute path). */
export declare function wait(session: string, options?: Options): Promise<Verdict>;
/** Waits for many, yielding answers in the order they arrive. */
export declare function waitMany(sessions: string[], options?: ManyOptions): AsyncGenerator<Answer, void, undefined>;
/** The daemon's events (`subscribed`, `started`, `verdict`, …), across restarts. */
export declare function events(options?: { socket?: string; under?: string[]; signal?: AbortSignal }): AsyncGenerator<Record<string, unknown>, void, undefined>;
/** The daemon's counters. */
export declare function status(options?: { socket?: string }): Promise<Record<string, unknown> & { waiters: number; sessions: number }>;
/** The exit code `verdict wait` returns for a verdict or an error. */
export declare function exitCode(answer: Verdict | Error): ExitCode;
/** The worst of exit codes: success < timeout < failure < unreachable < usage. */
export declare function worstExit(codes: Iterable<ExitCode>): ExitCode;
