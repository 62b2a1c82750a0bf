// `switchover cleanup [--dry-run] [RUN-ID...]`: lists and removes what earlier runs left behind
// when they could not tear down (SIGKILL, a crash of the machine's session, a killed sudo):
// network namespaces so-<id>-h/-c, links named after a run in the root netns, the processes inside
// those namespaces or naming the run dir (VMs, tcpdump, ping, bridge monitor), and the run dir
// <tmpdir>/switchover-<id> with its sockets. Nothing else is touched:
//   - only names of a run (names.ts patterns) are matched;
//   - a run dir must belong to the user running cleanup (lstat uid; a symlink is never one);
//   - a run whose owner still runs is live and left alone: the run dir's marker names the pid
//     and its start time (names.ts), so a reused pid does not look alive. A run dir whose marker
//     is not written yet (younger than FRESH_MS) counts as live too;
//   - namespaces without a run dir here are judged by the run dir their processes name (a run
//     with another TMPDIR, once its VMs run), and removed only when that run is not live; with
//     no such process they are kept while younger than FRESH_MS (a run still building);
//   - RUN-IDs limit it to those runs.
// Each removed run is then checked with topology.ts's leftovers(), as teardown checks itself.
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CommandSpec, HELP_OPTION, UsageError, parseCommand } from './args.js';
import { runPrivileged, signalProcess } from '../net/exec.js';
import { NETNS_PATTERN, RUN_DIR_PATTERN, runDirPath, runNames, runOwner } from '../net/names.js';
import { quote } from '../scenario/schema.js';
import { leftovers } from '../net/topology.js';

const NETNS_DIR = '/run/netns';
/** A run dir this young may not have its owner marker yet: treat it as live. */
const FRESH_MS = 60_000;
const KILL_GRACE_MS = 2_000;

/** What one earlier run left. */
export interface LeftRun {
  runId: string;
  /** The run dir, when it exists (here, or where its processes point). */
  runDir?: string;
  netns: Array<{ name: string; inode: number; mtimeMs: number }>;
  links: string[];
  processes: Array<{ pid: number; cmdline: string }>;
  /** Why the run is left alone; undefined when it is removable. */
  keep?: string;
}

interface ProcInfo { pid: number; cmdline: string; netns?: string }

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline) continue; // a kernel thread or a zombie
      let netns: string | undefined;
      try {
        netns = readlinkSync(`/proc/${entry}/ns/net`);
      } catch {
        // another user's process: judged by its command line alone
      }
      out.push({ pid: Number(entry), cmdline: cmdline.split('\0').join(' ').trim(), netns });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

function ownRunDir(dir: string): { ok: true; mtimeMs: number } | { ok: false; why: string } | undefined {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return { ok: false, why: `${dir} is not a directory` };
  const uid = process.getuid?.() ?? -1;
  if (st.uid !== uid) return { ok: false, why: `${dir} belongs to uid ${st.uid}` };
  return { ok: true, mtimeMs: st.mtimeMs };
}

/** Why a run with this run dir must be left alone, or undefined. */
function keepReason(runDir: string, now: number): string | undefined {
  const own = ownRunDir(runDir);
  if (!own) return undefined;
  if (!own.ok) return own.why;
  const owner = runOwner(runDir);
  if (owner?.alive) return `live: its run (pid ${owner.pid}) is still going`;
  if (!owner && now - own.mtimeMs < FRESH_MS) return 'live: its run dir was just created';
  return undefined;
}

/** Every run that left something, each with what it left and whether it may go. */
export async function findLeftRuns(): Promise<LeftRun[]> {
  const runs = new Map<string, LeftRun>();
  const get = (runId: string): LeftRun => {
    let r = runs.get(runId);
    if (!r) runs.set(runId, (r = { runId, netns: [], links: [], processes: [] }));
    return r;
  };
  for (const name of readdirSync(tmpdir())) {
    const id = RUN_DIR_PATTERN.exec(name)?.[1];
    if (id) get(id).runDir = join(tmpdir(), name);
  }
  let nsNames: string[] = [];
  try {
    nsNames = readdirSync(NETNS_DIR);
  } catch {
    // no netns was ever made on this machine
  }
  for (const name of nsNames) {
    const id = NETNS_PATTERN.exec(name)?.[1];
    if (!id) continue;
    try {
      const st = statSync(join(NETNS_DIR, name));
      get(id).netns.push({ name, inode: st.ino, mtimeMs: st.mtimeMs });
    } catch {
      // deleted while we looked
    }
  }
  const links = await runPrivileged(['ip', '-o', 'link', 'show'], { allowFail: true }).then((r) => r.stdout, () => '');
  for (const m of links.matchAll(/^\d+: (so([0-9a-f]{6})(?:b|t0|t1|vh|vc))[@:]/gm)) get(m[2]!).links.push(m[1]!);

  const procs = processes();
  for (const r of runs.values()) {
    const inodes = new Set(r.netns.map((n) => `net:[${n.inode}]`));
    const dirMark = r.runDir ?? runDirPath(r.runId);
    for (const p of procs) {
      if ((p.netns && inodes.has(p.netns)) || p.cmdline.includes(dirMark)) r.processes.push({ pid: p.pid, cmdline: p.cmdline });
    }
    if (!r.runDir) {
      // A run with another TMPDIR: its VMs and tcpdumps name its run dir.
      const elsewhere = r.processes.map((p) => new RegExp(`(/\\S*/switchover-${r.runId})(?=/|\\s|$)`).exec(p.cmdline)?.[1]).find(Boolean);
      if (elsewhere) r.runDir = elsewhere;
    }
  }
  const now = Date.now();
  for (const r of runs.values()) {
    if (r.runDir) r.keep = keepReason(r.runDir, now);
    else if (r.netns.some((n) => now - n.mtimeMs < FRESH_MS)) r.keep = 'live: its netns was just created and no run dir names it yet';
  }
  return [...runs.values()].sort((a, b) => (a.runId < b.runId ? -1 : 1));
}

function describe(r: LeftRun): string[] {
  return [
    ...r.netns.map((n) => `netns ${n.name}`),
    ...r.links.map((l) => `link ${l}`),
    ...r.processes.map((p) => `process ${p.pid}: ${p.cmdline}`),
    ...(r.runDir && ownRunDir(r.runDir)?.ok ? [`directory ${r.runDir}`] : []),
  ];
}

/** Removes one run's leftovers; returns what is still there afterwards. */
export async function removeRun(r: LeftRun): Promise<string[]> {
  // Processes first: a netns outlives `ip netns del` while a process holds it.
  let pids = r.processes.map((p) => p.pid);
  for (const pid of pids) await signalProcess(pid, 'SIGTERM').catch(() => false);
  for (let waited = 0; pids.length && waited < KILL_GRACE_MS; waited += 50) {
    await sleep(50);
    pids = pids.filter((pid) => readProcState(pid) !== undefined);
  }
  for (const pid of pids) await signalProcess(pid, 'SIGKILL').catch(() => false);
  for (const ns of r.netns) await runPrivileged(['ip', 'netns', 'del', ns.name], { allowFail: true });
  for (const link of r.links) await runPrivileged(['ip', 'link', 'del', link], { allowFail: true });
  if (r.runDir && ownRunDir(r.runDir)?.ok) rmSync(r.runDir, { recursive: true, force: true });
  const runDir = r.runDir ?? runDirPath(r.runId);
  // Killed processes can take a moment to leave the process table.
  for (let waited = 0; ; waited += 100) {
    const left = await leftovers(runNames(r.runId), runDir, r.netns.map((n) => n.inode));
    if (!left.length || waited >= KILL_GRACE_MS) return left;
    await sleep(100);
  }
}

/** The state letter of /proc/PID/stat; undefined when the process is gone or a zombie. */
function readProcState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' ? undefined : state;
  } catch {
    return undefined;
  }
}

const OPTIONS = {
  'dry-run': { type: 'boolean', default: false, help: 'list what would be removed, remove nothing' },
  help: HELP_OPTION,
} as const;
export const CLEANUP: CommandSpec<typeof OPTIONS> = {
  name: 'cleanup', args: '[RUN-ID...]',
  summary: 'Remove what killed runs left behind (netns, links, processes, run dirs): your runs only, never a live one.',
  options: OPTIONS,
};

export async function cleanupCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(CLEANUP, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const bad = positionals.find((id) => !/^[0-9a-f]{6}$/.test(id));
  if (bad !== undefined) throw new UsageError(`${quote(bad)} is not a run id (6 hex digits, as in so-<id>-h)`, CLEANUP);
  const runs = (await findLeftRuns()).filter((r) => !positionals.length || positionals.includes(r.runId));
  if (!runs.length) { process.stdout.write('nothing left by earlier runs\n'); return 0; }
  let failed = false;
  for (const r of runs) {
    const things = describe(r);
    if (r.keep) {
      process.stdout.write(`run ${r.runId}: kept, ${r.keep} (${things.length} item(s))\n`);
      continue;
    }
    process.stdout.write(`run ${r.runId}:${things.map((t) => `\n  ${t}`).join('')}\n`);
    if (values['dry-run'] || !things.length) continue;
    const left = await removeRun(r);
    failed ||= left.length > 0;
    process.stdout.write(left.length ? `  could not remove:${left.map((t) => `\n    ${t}`).join('')}\n` : '  removed\n');
  }
  return failed ? 2 : 0;
}
