// Running external commands, all on execa: always an argument array (never a shell string),
// with errors that show the command, its exit code and stderr, and a missing tool named with
// the Debian package that provides it. Privileged steps go through `privileged()`, which
// prefixes `sudo -n` unless we are root and refuses any command not in PRIVILEGED_COMMANDS:
// that list is the whole of what switchover uses sudo for.
//
// API
//   run(argv, { env?, cwd?, timeoutMs?, input?, allowFail? }) -> Promise<RunResult>
//   start(argv, { stdio?, env?, cwd?, detached?, timeoutMs?, input?, maxOutputBytes? }) -> Subprocess
//        a long-running child (tcpdump, ping, the generator, a VM): execa's subprocess, whose
//        promise resolves (never rejects) with the exit and the piped output once it has exited
//   commandFailure(argv, result, { timeoutMs?, allowFail? }) -> Error | undefined
//        the ToolMissingError or CommandError a finished command amounts to
//   neverRan(result) -> string | undefined   why a started child never ran (spawn failed)
//   privileged(argv) -> argv            `sudo -n` prefix unless root; listed commands only
//   runPrivileged(argv, opts)           run(privileged(argv), opts)
//   requireTools(['tcpdump', ...], env?) throws ToolMissingError for the first missing tool
//   resolveTool(tool, env?) -> path     PATH, then /usr/sbin, /sbin; else ToolMissingError
//   signalProcess(pid, signal)          kill(2), through `sudo -n kill` when not root
//   PRIVILEGED_COMMANDS, TOOL_PACKAGES, CommandError, ToolMissingError
import { execa, type Result, type ResultPromise } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Tool -> the Debian package that provides it (scripts/setup.sh installs the same set; apt,
 * dpkg, xz-utils and libc-bin, which the guest recipe uses too, come with Debian itself).
 */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2', bridge: 'iproute2', tc: 'iproute2',
  tcpdump: 'tcpdump', ping: 'iputils-ping',
  'qemu-system-x86_64': 'qemu-system-x86', nft: 'nftables',
  sudo: 'sudo', kill: 'procps', sysctl: 'procps',
  gcc: 'gcc', 'apt-get': 'apt', 'apt-cache': 'apt', 'dpkg-deb': 'dpkg', xz: 'xz-utils', getconf: 'libc-bin',
};

/**
 * The only commands ever run with sudo. Programs that must run inside a run's network
 * namespace (ping, tcpdump, the VMs, the UDP stream) enter it through `ip netns exec`,
 * so they are covered by `ip`.
 */
export const PRIVILEGED_COMMANDS: readonly string[] = ['ip', 'bridge', 'tc', 'nft', 'tcpdump', 'kill'];

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFail?: boolean;
}

export interface RunResult { argv: string[]; exitCode: number; stdout: string; stderr: string }

/** stdin: nothing or a pipe; stdout and stderr: nothing, a pipe, or an open fd (a log file). */
export type StartStdio = readonly ['ignore' | 'pipe', 'ignore' | 'pipe' | number, 'ignore' | 'pipe' | number];

export interface StartOptions {
  /** Default: stdin ignored, stdout and stderr piped (readable as they come, and in the result). */
  stdio?: StartStdio;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Its own process group: a terminal's Ctrl-C reaches only the harness, which stops it in order. */
  detached?: boolean;
  /** SIGKILL after this long. */
  timeoutMs?: number;
  input?: string;
  /** Piped output kept per stream; beyond it execa fails the command. Default: no limit. */
  maxOutputBytes?: number;
}

// Output as text, exactly as the child wrote it; the exit is read from the result, never thrown;
// env is the one given (or ours), not merged into ours.
const EXECA_DEFAULTS = { reject: false, extendEnv: false, stripFinalNewline: false, encoding: 'utf8', killSignal: 'SIGKILL' } as const;
type Piped = 'ignore' | 'pipe';
type StartExecaOptions = typeof EXECA_DEFAULTS & { stdio: readonly [Piped, Piped, Piped] };
export type Subprocess = ResultPromise<StartExecaOptions>;
export type SubprocessResult = Result<StartExecaOptions>;

/** A command that ran and failed: the message shows the command, exit code and stderr. */
export class CommandError extends Error {
  constructor(readonly argv: string[], readonly exitCode: number | null, readonly stderr: string,
    readonly stdout: string, options?: { cause?: unknown; signal?: string | null }) {
    const how = options?.signal ? `was killed by ${options.signal}` : `exited with code ${exitCode}`;
    const err = stderr.trim();
    super(`command failed: ${formatArgv(argv)} ${how}${err ? `: ${err}` : ''}`, { cause: options?.cause });
    this.name = 'CommandError';
  }
}

/** A tool that is not installed; says which Debian package provides it. */
export class ToolMissingError extends Error {
  constructor(readonly tool: string, options?: { cause?: unknown }) {
    super(`${tool} not found: run \`npm run setup\` or \`apt-get install ${TOOL_PACKAGES[tool] ?? tool}\``, options);
    this.name = 'ToolMissingError';
  }
}

/** Quote for display only; nothing built here is ever handed to a shell. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** run()'s bound on each of stdout and stderr: more is a runaway command. */
const RUN_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** `argv` prefixed with `sudo -n` unless root; throws for a command not in PRIVILEGED_COMMANDS. */
export function privileged(argv: readonly string[]): string[] {
  const [cmd] = argv;
  if (cmd === undefined || !PRIVILEGED_COMMANDS.includes(cmd)) {
    throw new Error(`refusing to run ${formatArgv(argv)} with privilege: only ${PRIVILEGED_COMMANDS.join(', ')} are allowed`);
  }
  return isRoot() ? [...argv] : ['sudo', '-n', ...argv];
}

/** The tool `sudo` or `ip netns exec` could not find, read from its stderr, if that is why it failed. */
export function missingToolIn(stderr: string): string | undefined {
  // sudo: "sudo: tcpdump: command not found"; ip netns exec: 'exec of "tcpdump" failed: No such file or directory'
  const m = /sudo: ([^:\s]+): command not found/.exec(stderr) ?? /exec of "([^"]+)" failed: No such file/.exec(stderr);
  return m?.[1];
}

/** Run a command; rejects with CommandError (or ToolMissingError when it is not installed). */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const r = await start(argv, {
    stdio: ['pipe', 'pipe', 'pipe'], env: opts.env, cwd: opts.cwd, timeoutMs, input: opts.input, maxOutputBytes: RUN_MAX_OUTPUT_BYTES,
  });
  const failed = commandFailure(argv, r, { timeoutMs, allowFail: opts.allowFail });
  if (failed) throw failed;
  return { argv: [...argv], exitCode: r.exitCode ?? 0, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/**
 * Start `argv` (its program resolved as resolveTool does; ToolMissingError when it is not
 * installed). The subprocess is a ChildProcess (pid, stdout, stderr) and a promise of its result.
 */
export function start(argv: readonly string[], opts: StartOptions = {}): Subprocess {
  const [file, ...args] = argv;
  if (!file) throw new Error('start: empty command');
  return execa(resolveTool(file, opts.env), args, {
    ...EXECA_DEFAULTS,
    // execa's types know fds 1 to 9 only; spawn takes any open fd as it is.
    stdio: (opts.stdio ?? ['ignore', 'pipe', 'pipe']) as StartExecaOptions['stdio'],
    env: opts.env ?? process.env,
    maxBuffer: opts.maxOutputBytes ?? Infinity,
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.detached ? { detached: true } : {}),
    ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

/**
 * What a finished command amounts to: undefined when it succeeded (or, with allowFail, exited
 * with any code), else ToolMissingError when the program (or the one sudo or `ip netns exec`
 * was to run) is not installed, else CommandError with the command, exit code and stderr.
 */
export function commandFailure(argv: readonly string[], r: SubprocessResult,
  o: { timeoutMs?: number; allowFail?: boolean } = {}): Error | undefined {
  if (!r.failed) return undefined;
  const stderr = String(r.stderr ?? ''), stdout = String(r.stdout ?? '');
  if (r.code === 'ENOENT') return new ToolMissingError(argv[0]!, { cause: r });
  const missing = missingToolIn(stderr);
  if (missing) return new ToolMissingError(missing, { cause: r });
  const exitCode = r.exitCode ?? null;
  if (o.allowFail && exitCode !== null) return undefined;
  const timedOut = r.timedOut ? ` (timed out after ${o.timeoutMs} ms)` : '';
  return new CommandError([...argv], exitCode, stderr + timedOut, stdout, { cause: r, signal: r.signal ?? null });
}

/** Why the child never ran (its spawn failed, e.g. ENOENT), or undefined when it ran and exited. */
export function neverRan(r: SubprocessResult): string | undefined {
  return r.exitCode === undefined && r.signal === undefined ? (r.originalMessage ?? r.shortMessage) : undefined;
}

export function runPrivileged(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(privileged(argv), opts);
}

/**
 * Where `tool` resolves: PATH (of `env`), then /usr/sbin and /sbin, where Debian puts ip,
 * bridge and tc and which a non-root PATH often lacks (sudo's secure_path has them).
 */
export function whichTool(tool: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (tool.includes('/')) return tool;
  for (const dir of [...(env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']) {
    if (!dir) continue;
    const p = join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this PATH entry
    }
  }
  return undefined;
}

/** The absolute path of `tool`; throws ToolMissingError naming its package. */
export function resolveTool(tool: string, env: NodeJS.ProcessEnv = process.env): string {
  const path = whichTool(tool, env);
  if (!path) throw new ToolMissingError(tool);
  return path;
}

/** Check up front that every tool is installed; throws ToolMissingError naming its package. */
export function requireTools(tools: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  for (const tool of tools) {
    if (!whichTool(tool, env)) throw new ToolMissingError(tool);
  }
}

/**
 * Send a signal to a process we started. Processes started through sudo run as root, so a
 * non-root harness signals them with `sudo -n kill`. Resolves false when it is already gone.
 */
export async function signalProcess(pid: number, signal: NodeJS.Signals): Promise<boolean> {
  if (isRoot()) {
    try {
      process.kill(pid, signal);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw e;
    }
  }
  const r = await runPrivileged(['kill', `-${signal.replace(/^SIG/, '')}`, '--', String(pid)], { allowFail: true });
  return r.exitCode === 0;
}
