// Interrupting a run (issue 18, D2/D4): each of SIGINT, SIGTERM, SIGHUP and SIGQUIT, sent while
// the run is booting, migrating and analyzing, ends the run with 128+signal and leaves nothing
// behind (netns, links, processes, sockets, run dir: topology.ts's leftovers(), given the
// run's netns inodes, so a process still inside a deleted netns counts). After SIGKILL, which
// cannot be caught, `switchover cleanup` leaves nothing behind; and it never touches a live run.
// Runs are short (one ping flow, 400 ms of traffic) and one at a time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statSync } from 'node:fs';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { runNames } from '../../net/names.js';
import { leftovers } from '../../net/topology.js';
import { runCli, startCli } from './run-cli.js';

const SHORT_RUN = ['run', 'baseline-bridge-ping', '--set', 'duration=400', '--set', 'migrate-after=100', '--set', 'mem=64'];
const SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, SIGQUIT: 131 } as const;
const PHASES = { booting: /: booting source$/, migrating: /: migrating$/, analyzing: /: analyzing$/ } as const;
type Phase = keyof typeof PHASES;

interface Interrupted {
  code: number | null; signal: NodeJS.Signals | null; stderr: string;
  runId?: string; runDir?: string; inodes: number[];
  /** The last progress phase the run printed before it ended. */
  lastPhase: string;
}

/** Starts the short run and sends `signal` as soon as it prints `phase`. */
async function interrupt(signal: NodeJS.Signals, phase: Phase, extra: string[] = []): Promise<Interrupted> {
  const out: Interrupted = { code: null, signal: null, stderr: '', inodes: [], lastPhase: '' };
  let sent = false;
  const { done } = startCli([...SHORT_RUN, ...extra], {
    timeoutMs: 120_000,
    onStderrLine: (line, child) => {
      const up = /topology up \(run ([0-9a-f]{6}), (\S+)\)/.exec(line);
      if (up) {
        out.runId = up[1];
        out.runDir = up[2];
        const n = runNames(up[1]!);
        for (const ns of [n.hostNs, n.clientNs]) out.inodes.push(statSync(`/run/netns/${ns}`).ino);
      }
      const p = /^\[[\d.]+s\] [^:]+: (.+)$/.exec(line)?.[1];
      if (p) out.lastPhase = p;
      if (!sent && PHASES[phase].test(line)) {
        sent = true;
        child.kill(signal);
      }
    },
  });
  const r = await done;
  assert.not.ok(r.timedOut, `${signal} at ${phase}: the run did not end\n${r.stderr}`);
  return { ...out, code: r.code, signal: r.signal, stderr: r.stderr };
}

async function left(r: Interrupted): Promise<string[]> {
  assert.ok(r.runId && r.runDir, `no run id in the progress output:\n${r.stderr}`);
  return leftovers(runNames(r.runId!), r.runDir!, r.inodes);
}

const matrix: string[] = [];

if (requirePrivilege('the signal tests')) {
  for (const [signal, code] of Object.entries(SIGNALS) as Array<[NodeJS.Signals, number]>) {
    for (const phase of Object.keys(PHASES) as Phase[]) {
      test(`${signal} while ${phase}: exit ${code}, nothing left behind`, async () => {
        const r = await interrupt(signal, phase);
        assert.is(r.code, code, `${signal} at ${phase}: exit ${r.code} ${r.signal ?? ''} (last phase "${r.lastPhase}")\n${r.stderr}`);
        const remaining = await left(r);
        assert.equal(remaining, [], `${signal} at ${phase} left:\n${remaining.join('\n')}`);
        matrix.push(`${signal.padEnd(7)} ${phase.padEnd(9)} exit ${code}, torn down, nothing left`);
      });
    }
  }

  for (const phase of Object.keys(PHASES) as Phase[]) {
    test(`SIGKILL while ${phase}: switchover cleanup removes what the run left`, async () => {
      const r = await interrupt('SIGKILL', phase);
      assert.is(r.signal, 'SIGKILL');
      const before = await left(r);
      assert.ok(before.some((l) => l.startsWith('netns ')), `SIGKILL at ${phase} should leave the netns: ${before.join(', ')}`);
      const c = await runCli(['cleanup', r.runId!]);
      assert.is(c.code, 0, c.stdout + c.stderr);
      assert.match(c.stdout, new RegExp(`run ${r.runId}:[\\s\\S]*\\n  removed\\n`));
      const after = await left(r);
      assert.equal(after, [], `after cleanup:\n${after.join('\n')}`);
      matrix.push(`SIGKILL ${phase.padEnd(9)} left ${before.length} item(s); switchover cleanup removed them, nothing left`);
    });
  }

  test('switchover cleanup never touches a live run, whatever TMPDIR it sees', async () => {
    let runId: string | undefined, runDir: string | undefined;
    let checks: Promise<void> | undefined;
    const { done } = startCli(['run', 'baseline-bridge-ping', '--set', 'duration=3000', '--set', 'migrate-after=1000', '--set', 'mem=64'], {
      onStderrLine: (line) => {
        const up = /topology up \(run ([0-9a-f]{6}), (\S+)\)/.exec(line);
        if (up) [, runId, runDir] = up;
        if (!checks && /: traffic$/.test(line)) {
          checks = (async () => {
            const same = await runCli(['cleanup', runId!]);
            assert.is(same.code, 0, same.stderr);
            assert.match(same.stdout, new RegExp(`run ${runId}: kept, live: its run \\(pid \\d+\\) is still going`));
            // Another TMPDIR: the run dir is not where cleanup looks, but the run's VMs name it.
            const elsewhere = await runCli(['cleanup', runId!], { env: { TMPDIR: '/var/tmp' } });
            assert.is(elsewhere.code, 0, elsewhere.stderr);
            assert.match(elsewhere.stdout, new RegExp(`run ${runId}: kept, live`));
          })();
          checks.catch(() => undefined); // awaited below, once the run is over
        }
      },
    });
    const r = await done;
    await checks;
    assert.ok(checks, `the run never reached traffic:\n${r.stderr}`);
    assert.ok(r.code === 0 || r.code === 1, `the live run was disturbed: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.not.match(r.stdout, /ERROR/);
    assert.equal(await leftovers(runNames(runId!), runDir!), []);
  });

  test.after(() => { if (matrix.length) console.log(`\n  signal matrix:\n    ${matrix.join('\n    ')}`); });
}

test.run();
