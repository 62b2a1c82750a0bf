// Running external commands: always an argument array (never a shell string), with errors
// that show the command, its exit code and stderr, and a missing tool named with the Debian
// package that provides it. Privileged steps go through `privileged()`, which prefixes
// `sudo -n` unless we are root and refuses any command not in PRIVILEGED_COMMANDS: that
// list is the whole of what switchover uses sudo for.
//
// API
//   run(argv, { env?, timeoutMs?, input?, allowFail? }) -> Promise<RunResult>
//   privileged(argv) -> argv            `sudo -n` prefix unless root; listed commands only
//   runPrivileged(argv, opts)           run(privileged(argv), opts)
//   requireTools(['tcpdump', ...], env?) throws ToolMissingError for the first missing tool
//   resolveTool(tool, env?) -> path     PATH, then /usr/sbin, /sbin; else ToolMissingError
//   signalProcess(pid, signal)          kill(2), through `sudo -n kill` when not root
//   PRIVILEGED_COMMANDS, TOOL_PACKAGES, CommandError, ToolMissingError
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Tool -> the Debian package that provides it (scripts/setup.sh installs the same set). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2', bridge: 'iproute2', tc: 'iproute2',
  tcpdump: 'tcpdump', ping: 'iputils-ping',
  'qemu-system-x86_64': 'qemu-system-x86', nft: 'nftables',
  sudo: 'sudo', kill: 'procps', sysctl: 'procps',
};

/**
 * The only commands ever run with sudo. Programs that must run inside a run's network
 * namespace (ping, tcpdump, the VMs, the UDP stream) enter it through `ip netns exec`,
 * so they are covered by `ip`.
 */
export const PRIVILEGED_COMMANDS: readonly string[] = ['ip', 'bridge', 'tc', 'nft', 'tcpdump', 'kill'];

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  input?: string;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFail?: boolean;
}

export interface RunResult { argv: string[]; exitCode: number; stdout: string; stderr: string }

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
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.reject(new Error('run: empty command'));
  let path: string;
  try {
    path = resolveTool(file, opts.env);
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise((resolve, reject) => {
    const child = execFile(path, args, {
      env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024,
      encoding: 'utf8', killSignal: 'SIGKILL',
    }, (error, stdout, stderr) => {
      if (!error) return resolve({ argv: [...argv], exitCode: 0, stdout, stderr });
      const e = error as NodeJS.ErrnoException & { code?: number | string; signal?: string | null; killed?: boolean };
      if (e.code === 'ENOENT') return reject(new ToolMissingError(file, { cause: error }));
      const missing = missingToolIn(stderr);
      if (missing) return reject(new ToolMissingError(missing, { cause: error }));
      const exitCode = typeof e.code === 'number' ? e.code : null;
      if (opts.allowFail && exitCode !== null) return resolve({ argv: [...argv], exitCode, stdout, stderr });
      const signal = e.signal ?? null;
      const timedOut = e.killed && signal === 'SIGKILL' ? ` (timed out after ${opts.timeoutMs ?? 30_000} ms)` : '';
      reject(new CommandError([...argv], exitCode, stderr + timedOut, stdout, { cause: error, signal }));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
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
