// One VM process, for both backends and the bench, in the shape of QEMU's QEMUMachine
// (python/qemu/machine/machine.py): launch the command line (inside `ip netns exec NS` when
// given), its stdout and stderr appended to a log; wait for its QMP socket and connect; stop it
// with a soft `quit`, then SIGTERM, then SIGKILL, each step bounded. A VM that exits, or does
// not answer on QMP, before the connection is up is a VmLaunchError carrying the command line,
// the exit and the log's tail (QEMU's VMLaunchFailure(exitcode, command, output)). Every exit
// path of the harness (SIGINT too) stops a VM still running: SIGTERM, then SIGKILL.
//
// API
//   launchVm({ name, argv, netns?, logPath, qmpPath, connectTimeoutMs?, quitTimeoutMs?,
//              termTimeoutMs?, qmpTranscript? }) -> Promise<VmProcess>
//   VmProcess: { name, pid, argv, command, qmp, logPath, exited, kill(signal?), shutdown() }
//   VmLaunchError: { command, exit?, logPath, logTail }
//   logTail(path, lines?) -> the log's last lines, or what stands in for them
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { onExit } from '../net/cleanup.js';
import { formatArgv, neverRan, privileged, signalProcess, start, type Subprocess, type SubprocessResult } from '../net/exec.js';
import { validateName } from '../net/names.js';
import { QmpClient, type QmpTranscript } from '../../lib/qmp-client.js';
import type { VmExit } from '../scenario/types.js';

export interface VmProcessOptions {
  /** Names the VM in errors. */
  name: string;
  /** The VM's command line, program first. */
  argv: readonly string[];
  /** Run it in this network namespace (`ip netns exec`, privileged). */
  netns?: string;
  /** Where its stdout and stderr are appended. */
  logPath: string;
  /** Its `-qmp unix:PATH,server=on,wait=off` socket. */
  qmpPath: string;
  connectTimeoutMs?: number;
  /** Bound on the `quit` reply, and then on the exit after it. */
  quitTimeoutMs?: number;
  /** Bound on the exit after SIGTERM, before SIGKILL. */
  termTimeoutMs?: number;
  /** Sees the QMP conversation from the greeting on (the runner's trace). */
  qmpTranscript?: QmpTranscript;
}

export interface VmProcess {
  name: string;
  pid: number;
  /** The VM's command line as given, without the netns wrapper. */
  argv: string[];
  /** What was run: argv inside `ip netns exec` (and sudo) when a netns was given. */
  command: string[];
  /** Connected, capabilities negotiated. */
  qmp: QmpClient;
  logPath: string;
  exited: Promise<VmExit>;
  /** Signal it (SIGKILL by default) and resolve once it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** `quit` over QMP, then SIGTERM, then SIGKILL, each bounded; resolves once it is gone. */
  shutdown(): Promise<void>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_QUIT_TIMEOUT_MS = 3_000;
const DEFAULT_TERM_TIMEOUT_MS = 2_000;
const LOG_TAIL_LINES = 15;

/** The VM did not come up: it exited first, or never answered on QMP (and was killed). */
export class VmLaunchError extends Error {
  constructor(readonly vm: string, readonly command: readonly string[], readonly logPath: string, readonly logTail: string,
    readonly exit: VmExit | undefined, why: string, options?: { cause?: unknown }) {
    super(`VM ${vm} ${why}\n  command: ${formatArgv(command)}\n  ${logPath}:\n${indent(logTail)}`, options);
    this.name = 'VmLaunchError';
  }
}

/** The last `lines` lines of a log, "(log empty)" or "(no log)". */
export function logTail(path: string, lines = LOG_TAIL_LINES): string {
  let text: string;
  try {
    text = readFileSync(path, 'latin1').trimEnd();
  } catch {
    return '(no log)';
  }
  return text ? text.split('\n').slice(-lines).join('\n') : '(log empty)';
}

const indent = (text: string): string => text.split('\n').map((l) => `    ${l}`).join('\n');

export async function launchVm(o: VmProcessOptions): Promise<VmProcess> {
  const argv = [...o.argv];
  const command = o.netns ? privileged(['ip', 'netns', 'exec', validateName('netns', o.netns), ...argv]) : argv;
  const quitMs = o.quitTimeoutMs ?? DEFAULT_QUIT_TIMEOUT_MS;
  const termMs = o.termTimeoutMs ?? DEFAULT_TERM_TIMEOUT_MS;
  const logFd = openSync(o.logPath, 'a', 0o600);
  let child: Subprocess;
  try {
    // Its own process group: a terminal's Ctrl-C reaches only the harness, which stops VMs in order.
    child = start(command, { stdio: ['ignore', logFd, logFd], detached: true });
  } finally {
    closeSync(logFd);
  }
  const exited = child.then((r): VmExit => ({ code: r.exitCode ?? null, signal: (r.signal ?? null) as NodeJS.Signals | null }));
  let gone = false;
  void exited.then(() => { gone = true; });
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (!gone && child.pid !== undefined) await signalProcess(child.pid, sig).catch(() => false);
  };
  const within = (ms: number): Promise<boolean> => Promise.race([exited.then(() => true), sleep(ms, false, { ref: false })]);
  const terminate = async (): Promise<void> => {
    await signal('SIGTERM');
    if (!(await within(termMs))) await signal('SIGKILL');
    await exited;
  };
  const unregister = onExit(terminate);
  void exited.then(unregister);
  const launchError = (why: string, exit?: VmExit, cause?: unknown): VmLaunchError =>
    new VmLaunchError(o.name, command, o.logPath, logTail(o.logPath), exit, why, { cause });

  const abandon = new AbortController();
  const connecting = QmpClient.connect(o.qmpPath, {
    timeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, signal: abandon.signal, transcript: o.qmpTranscript,
  });
  connecting.catch(() => undefined); // when the VM ends first, this one's failure is moot
  let first: QmpClient | SubprocessResult;
  try {
    first = await Promise.race([connecting, child]);
  } catch (e) {
    await signal('SIGKILL');
    await exited;
    throw launchError(`did not answer on QMP: ${(e as Error).message}`, undefined, e);
  }
  if (!(first instanceof QmpClient)) {
    abandon.abort();
    const why = neverRan(first);
    if (why) throw launchError(`could not start: ${why}`, undefined, first);
    const x = await exited;
    throw launchError(`exited (${x.signal ? `signal ${x.signal}` : `code ${x.code}`}) before its QMP socket answered`, x);
  }
  const qmp = first;

  return {
    name: o.name, pid: child.pid!, argv, command, qmp, logPath: o.logPath, exited,
    async kill(sig: NodeJS.Signals = 'SIGKILL') {
      await signal(sig);
      await exited;
      await qmp.close();
    },
    async shutdown() {
      if (!gone) {
        await qmp.execute('quit', undefined, { timeoutMs: quitMs }).catch(() => undefined);
        if (!(await within(quitMs))) await terminate();
      }
      await qmp.close();
    },
  };
}
