// Per-run names and the per-run directory. Every netns and link of a run carries the run's
// random id, so parallel runs (and parallel helpers) never collide, and every name fits
// Linux's IFNAMSIZ limit of 15 characters. Names are validated before they reach a command
// line: only [A-Za-z0-9_.-], so nothing from a scenario can smuggle in arguments.
//
// API
//   newRunId() -> 6 hex chars
//   runNames(runId) -> RunNames        hostNs so-<id>-h, clientNs so-<id>-c, bridge so<id>b,
//                                      tap0/tap1 so<id>t0/so<id>t1, veth so<id>vh/so<id>vc
//   validateName(kind, name) -> name   throws InvalidNameError
//   createRunDir(runId) -> path        <tmpdir>/switchover-<id>, mode 0700, must not exist;
//                                      holds the owner marker from the start
//   runOwner(runDir) -> { pid, alive } the process that made the run dir, and whether it runs
//   RUN_DIR_PATTERN, NETNS_PATTERN     what of a run `switchover cleanup` may match
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Interface and netns names: what the kernel accepts, minus anything a parser could misread. */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,15}$/;
const RUN_ID_PATTERN = /^[0-9a-f]{6}$/;
/** A run dir's name in the temp dir, and a run's netns names; group 1 is the run id. */
export const RUN_DIR_PATTERN = /^switchover-([0-9a-f]{6})$/;
export const NETNS_PATTERN = /^so-([0-9a-f]{6})-[hc]$/;
/**
 * The owner marker in a run dir: the pid of the process that made it and that process's start
 * time, so a pid reused by another process after a crash does not count as the run being alive.
 */
export const RUN_OWNER_FILE = 'owner';

export class InvalidNameError extends Error {
  constructor(readonly kind: string, readonly value: string) {
    super(`invalid ${kind} name ${JSON.stringify(value)}: use 1-15 characters from A-Z a-z 0-9 _ . - (not starting with -)`);
    this.name = 'InvalidNameError';
  }
}

export function validateName(kind: string, name: string): string {
  // A leading '-' would read as an option to ip/tcpdump; '.' and '..' are not file names.
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || name.startsWith('-') || name === '.' || name === '..') {
    throw new InvalidNameError(kind, String(name));
  }
  return name;
}

export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

export interface RunNames {
  runId: string;
  hostNs: string; clientNs: string;
  bridge: string; tap0: string; tap1: string;
  vethHost: string; vethClient: string;
}

export function runNames(runId: string): RunNames {
  if (!RUN_ID_PATTERN.test(runId)) throw new Error(`invalid run id ${JSON.stringify(runId)}: expected 6 lowercase hex digits`);
  const names: RunNames = {
    runId,
    hostNs: `so-${runId}-h`, clientNs: `so-${runId}-c`,
    bridge: `so${runId}b`, tap0: `so${runId}t0`, tap1: `so${runId}t1`,
    vethHost: `so${runId}vh`, vethClient: `so${runId}vc`,
  };
  for (const [kind, name] of Object.entries(names)) if (kind !== 'runId') validateName(kind, name);
  return names;
}

export function runDirPath(runId: string): string {
  return join(tmpdir(), `switchover-${runId}`);
}

/** The run's private directory (QMP sockets, logs, pcaps): mode 0700, and it must be new. */
export function createRunDir(runId: string): string {
  const dir = runDirPath(runId);
  mkdirSync(dir, { mode: 0o700 }); // no `recursive`: an existing directory is an error, not reused
  chmodSync(dir, 0o700); // the umask may have narrowed nothing, but be exact
  writeFileSync(join(dir, RUN_OWNER_FILE), `${process.pid} ${processStartTime(process.pid)}\n`, { flag: 'wx', mode: 0o600 });
  return dir;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot); undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ...": comm may hold spaces and parentheses; fields count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * The process that made `runDir`, and whether it still runs (same pid, same start time);
 * undefined when the dir has no readable marker (half made, half removed, or not a run).
 */
export function runOwner(runDir: string): { pid: number; alive: boolean } | undefined {
  let marker: string;
  try {
    marker = readFileSync(join(runDir, RUN_OWNER_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const m = /^(\d+) (\d+)\n$/.exec(marker);
  if (!m) return undefined;
  return { pid: Number(m[1]), alive: processStartTime(Number(m[1])) === m[2] };
}
