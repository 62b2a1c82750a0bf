// `switchover ...` as a user runs it, for the tests that reproduce a command line: a child
// process with its exit code, stdout and stderr, a time limit (a hang fails the test instead of
// the file), and on request a callback per stderr line (the progress lines of a run); or one
// subcommand called in this process, with what it writes to stdout and stderr.
//
// API
//   runCli(argv, { env?, cwd?, timeoutMs?, onStderrLine? }) -> Promise<CliResult>
//   startCli(argv, opts) -> { child, done }     the same, with the child to signal
//   runInProcess(command, argv) -> Promise<{ code, out, err }>
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../../bin/switchover.js', import.meta.url));

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean }
export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** SIGKILL after this long (default 120 s) and report timedOut. */
  timeoutMs?: number;
  onStderrLine?: (line: string, child: ChildProcess) => void;
}

export function startCli(argv: readonly string[], opts: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...argv], {
    cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '', stderr = '', partial = '', timedOut = false;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) opts.onStderrLine?.(line, child);
  });
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? 120_000);
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
  return { child, done };
}

export function runCli(argv: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  return startCli(argv, opts).done;
}

/** `command(argv)` (analyzeCommand, reportCommand, ...) in this process, its output captured. */
export async function runInProcess(
  command: (argv: string[]) => Promise<number>, argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const o = process.stdout.write.bind(process.stdout), e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
  try {
    return { code: await command(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}
