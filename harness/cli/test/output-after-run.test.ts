// Issue 18, D3: results computed by a run are never lost to an output that fails only when it
// is written. /proc/version passes every check a path can pass before the run (it exists and
// root may open it for writing) but refuses the write (EIO): the run exits 2 with one line
// naming the saved copy, the copy holds the results, and the other outputs are written.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import type { JsonReport } from '../../report/json.js';
import { runCli } from './run-cli.js';

const work = mkdtempSync(join(tmpdir(), 'switchover-output-test-'));

if (requirePrivilege('the output-after-run test') && process.getuid?.() === 0) {
  test('--json that fails after the run: exit 2, one line, results kept in a named copy; --junit still written', async () => {
    const junit = join(work, 'junit.xml');
    const r = await runCli(['run', 'baseline-bridge-ping', '--set', 'duration=400', '--set', 'migrate-after=100', '--set', 'mem=64',
      '--json', '/proc/version', '--junit', junit], { timeoutMs: 120_000 });
    assert.is(r.code, 2, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('switchover:'));
    assert.is(lines.length, 1, r.stderr);
    const m = /^switchover: --json \/proc\/version: cannot write \(EIO\); the output is saved in (\S+)$/.exec(lines[0]!);
    assert.ok(m, lines[0]);
    const saved = JSON.parse(readFileSync(m![1]!, 'utf8')) as JsonReport;
    assert.is(saved.results.length, 1);
    assert.is(saved.results[0]!.scenario, 'baseline-bridge-ping');
    assert.match(r.stdout, /baseline-bridge-ping\s+engine\s+(PASS|FAIL)/, 'the table is printed too');
    assert.ok(existsSync(junit) && readFileSync(junit, 'utf8').includes('<testsuite'), 'the other outputs are written');
    rmSync(dirname(m![1]!), { recursive: true, force: true });
  });
}

test.after(() => rmSync(work, { recursive: true, force: true }));
test.run();
