// Looking at a run from outside, for the reliability tests (soak, fault matrix, security):
// a backend wrapper that records what the runner launched (netns, run dir, VM handles), the
// processes this test process started (its descendants), and what of a run is left behind.
//
// API
//   recordingBackend(inner) -> { backend, launched }   launched: every VmHandle, in order
//   runOf(launched) -> { names, runDir } | undefined   the run the VMs belonged to
//   runLeftovers(launched) -> Promise<string[]>       topology.leftovers() for that run
//   descendants(pid?) -> number[]                       live descendant pids (default: us)
//   openFds(pid?) -> number                             entries in /proc/<pid>/fd
//   boundSockets(dir, pid?) -> number                   UNIX sockets bound under dir, as seen from pid's netns
import { readdirSync, readFileSync } from 'node:fs';
import { runNames, type RunNames } from '../../net/names.js';
import { leftovers } from '../../net/topology.js';
import type { VmBackend, VmHandle } from '../../scenario/types.js';

export interface RecordingBackend { backend: VmBackend; launched: VmHandle[] }

/** `inner` with every launched VM recorded, so a test can see the run the runner built. */
export function recordingBackend(inner: VmBackend): RecordingBackend {
  const launched: VmHandle[] = [];
  const backend: VmBackend = {
    name: inner.name,
    probe: () => inner.probe(),
    async launch(spec, hooks) {
      const vm = await inner.launch(spec, hooks);
      launched.push(vm);
      return vm;
    },
  };
  return { backend, launched };
}

/** The run (names, run dir) the recorded VMs belonged to; undefined when none was launched. */
export function runOf(launched: readonly VmHandle[]): { names: RunNames; runDir: string } | undefined {
  const spec = launched[0]?.spec;
  if (!spec) return undefined;
  const id = /^so-([0-9a-f]{6})-h$/.exec(spec.netns)?.[1];
  if (!id) throw new Error(`cannot read the run id from netns ${JSON.stringify(spec.netns)}`);
  return { names: runNames(id), runDir: spec.runDir };
}

/** What of the recorded run still exists: netns, links, processes, sockets, run dir. */
export async function runLeftovers(launched: readonly VmHandle[]): Promise<string[]> {
  const run = runOf(launched);
  return run ? leftovers(run.names, run.runDir) : [];
}

function parentOf(pid: string): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // exited while we looked
  }
}

/** Live descendants of `pid` (children, their children, ...). Zombies count: they are leaks too. */
export function descendants(pid = process.pid): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentOf(entry);
    if (ppid === undefined) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    for (const c of children.get(todo.pop()!) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

export function openFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * UNIX sockets bound to a path under `dir` that are still open. /proc/net/unix lists only the
 * sockets of the reader's netns, so read it through a process inside the run's netns.
 */
export function boundSockets(dir: string, pid: number | 'self' = 'self'): number {
  return readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').filter((l) => l.trim().split(/\s+/)[7]?.startsWith(`${dir}/`)).length;
}
