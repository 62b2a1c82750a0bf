// Migration settings over QMP, on a VM without a NIC (no privileges needed): QEMU's defaults,
// names, validation messages and the none state.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineArgv } from '../../lib/engine-argv.js';
import { QmpClient } from '../../lib/qmp-client.js';
import { executeUnchecked, qmpError } from './qmp-steps.js';

const BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'swa1q-'));
const qmpPath = join(dir, 'q.sock');
let proc: ChildProcess;
let q: QmpClient;

test.before(async () => {
  proc = spawn(process.execPath, [BIN, 'vm', ...engineArgv({ name: 'q', memMB: 16, qmpPath, paused: true })], { stdio: 'ignore' });
  q = await QmpClient.connect(qmpPath, { timeoutMs: 15_000 });
});
test.after(async () => {
  await q?.close();
  proc?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('the QMP socket is mode 0600 and the greeting is QEMU-shaped', () => {
  assert.is(statSync(qmpPath).mode & 0o777, 0o600);
  assert.is(q.greeting.QMP.version.qemu.major, 7);
  assert.equal(q.greeting.QMP.capabilities, ['oob']);
});

test('-S starts in prelaunch; query-migrate is empty before any migration', async () => {
  assert.equal(await q.execute('query-status'), { running: false, singlestep: false, status: 'prelaunch' });
  assert.equal(await q.execute('query-migrate'), {});
});

test('parameters have QEMU defaults and are validated', async () => {
  const p = await q.execute('query-migrate-parameters');
  assert.equal(p, {
    'downtime-limit': 300, 'max-bandwidth': 134217728, 'announce-initial': 50, 'announce-max': 550, 'announce-rounds': 5,
    'announce-step': 100, 'netpass-max-packets': 8192, 'netpass-max-bytes': 4194304, local: false,
    'x-netpass-trigger': 'vm-started', 'x-netpass-order': 'as-series', 'x-netpass-max-age-ms': 0,
  });
  await q.execute('migrate-set-parameters', { 'downtime-limit': 100, 'max-bandwidth': 0 });
  assert.is((await q.execute('query-migrate-parameters'))['downtime-limit'], 100);
  const bad = await qmpError(q.execute('migrate-set-parameters', { 'downtime-limit': 3_000_000 }));
  assert.match(bad.desc, /downtime_limit' expects an integer in the range of 0 to 2000000/);
  const wrong = await qmpError(executeUnchecked(q, 'migrate-set-parameters', { 'announce-step': 'x' }));
  assert.match(wrong.desc, /Invalid parameter type for 'announce-step'/);
});

test('capabilities are listed, set, and unknown ones refused', async () => {
  await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'return-path', state: true }] });
  const caps = await q.execute('query-migrate-capabilities');
  assert.ok(caps.find((c) => c.capability === 'return-path')!.state);
  assert.ok(caps.some((c) => c.capability === 'events') && caps.some((c) => c.capability === 'x-ignore-shared'));
  const bad = await qmpError(executeUnchecked(q, 'migrate-set-capabilities', { capabilities: [{ capability: 'teleport', state: true }] }));
  assert.match(bad.desc, /does not accept value 'teleport'/);
});

test('migrate with an unknown protocol and migrate-incoming without -incoming are refused', async () => {
  assert.match((await qmpError(q.execute('migrate', { uri: 'rdma:x' }))).desc, /unknown migration protocol/);
  assert.match((await qmpError(q.execute('migrate-incoming', { uri: 'unix:/x' }))).desc, /'-incoming' was not specified/);
  assert.equal(await q.execute('migrate_cancel'), {});
});

test.run();
