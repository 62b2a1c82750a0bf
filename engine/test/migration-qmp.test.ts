// Migration settings over QMP, on a VM without a NIC (no privileges needed): QEMU's defaults,
// names, validation messages and the none state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestQmp } from './qmp.js';

const BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'swa1q-'));
const qmpPath = join(dir, 'q.sock');
let proc: ChildProcess;
let q: TestQmp;

test.before(async () => {
  proc = spawn(process.execPath, [BIN, 'vm', '-name', 'q', '-m', '16M', '-qmp', `unix:${qmpPath},server=on,wait=off`, '-S'], { stdio: 'ignore' });
  q = await TestQmp.connect(qmpPath);
});
test.after(() => {
  q?.close();
  proc?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('the QMP socket is mode 0600 and the greeting is QEMU-shaped', () => {
  assert.is(statSync(qmpPath).mode & 0o777, 0o600);
  const g = q.greeting as { QMP: { version: { qemu: { major: number } }; capabilities: string[] } };
  assert.is(g.QMP.version.qemu.major, 7);
  assert.equal(g.QMP.capabilities, ['oob']);
});

test('-S starts in prelaunch; query-migrate is empty before any migration', async () => {
  assert.equal(await q.ok('query-status'), { running: false, singlestep: false, status: 'prelaunch' });
  assert.equal(await q.ok('query-migrate'), {});
});

test('parameters have QEMU defaults and are validated', async () => {
  const p = await q.ok<Record<string, number>>('query-migrate-parameters');
  assert.equal(p, {
    'downtime-limit': 300, 'max-bandwidth': 134217728, 'announce-initial': 50, 'announce-max': 550, 'announce-rounds': 5,
    'announce-step': 100, 'netpass-max-packets': 8192, 'netpass-max-bytes': 4194304, local: false,
  });
  await q.ok('migrate-set-parameters', { 'downtime-limit': 100, 'max-bandwidth': 0 });
  assert.is((await q.ok<Record<string, number>>('query-migrate-parameters'))['downtime-limit'], 100);
  const bad = await q.execute('migrate-set-parameters', { 'downtime-limit': 3_000_000 });
  assert.match((bad.error as { desc: string }).desc, /downtime_limit' expects an integer in the range of 0 to 2000000/);
  const wrong = await q.execute('migrate-set-parameters', { 'announce-step': 'x' });
  assert.match((wrong.error as { desc: string }).desc, /Invalid parameter type for 'announce-step'/);
});

test('capabilities are listed, set, and unknown ones refused', async () => {
  await q.ok('migrate-set-capabilities', { capabilities: [{ capability: 'return-path', state: true }] });
  const caps = await q.ok<Array<{ capability: string; state: boolean }>>('query-migrate-capabilities');
  assert.ok(caps.find((c) => c.capability === 'return-path')!.state);
  assert.ok(caps.some((c) => c.capability === 'events') && caps.some((c) => c.capability === 'x-ignore-shared'));
  const bad = await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'teleport', state: true }] });
  assert.match((bad.error as { desc: string }).desc, /does not accept value 'teleport'/);
});

test('migrate with an unknown protocol and migrate-incoming without -incoming are refused', async () => {
  assert.match(((await q.execute('migrate', { uri: 'rdma:x' })).error as { desc: string }).desc, /unknown migration protocol/);
  assert.match(((await q.execute('migrate-incoming', { uri: 'unix:/x' })).error as { desc: string }).desc, /'-incoming' was not specified/);
  assert.equal(await q.ok('migrate_cancel'), {});
});

test.run();
