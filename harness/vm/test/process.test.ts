// The one VM-process lifecycle (harness/vm/process.ts) against stand-in VMs (fake-vm.ts): a
// launch that fails is a VmLaunchError with the command, the exit and the log's tail; a VM
// that will not answer on QMP is killed; shutdown goes `quit`, then SIGTERM, then SIGKILL, and
// a VM that ignores both is killed within the bounds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchVm, logTail, VmLaunchError, type VmProcessOptions } from '../process.js';

const FAKE_VM = fileURLToPath(new URL('./fake-vm.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'so-vm-process-'));
let n = 0;

function options(mode: string, over: Partial<VmProcessOptions> = {}): VmProcessOptions {
  const name = `vm${n++}`;
  const qmpPath = join(dir, `${name}.qmp`);
  return { name, argv: [process.execPath, FAKE_VM, mode, qmpPath], logPath: join(dir, `${name}.log`), qmpPath, ...over };
}

async function launchError(o: VmProcessOptions): Promise<VmLaunchError> {
  const e = await launchVm(o).then(async (vm) => { await vm.kill(); return `${o.name} launched`; }, (x: Error) => x);
  assert.instance(e, VmLaunchError, String(e));
  return e as VmLaunchError;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('a VM that exits before QMP is a VmLaunchError with its command, exit code and log tail', async () => {
  const o = options('fail');
  const e = await launchError(o);
  assert.equal(e.command, o.argv);
  assert.equal(e.exit, { code: 1, signal: null });
  assert.is(e.logPath, o.logPath);
  assert.match(e.logTail, /could not configure \/dev\/net\/tun \(nosuch0\): Operation not permitted/);
  assert.match(e.message, new RegExp(`^VM ${o.name} exited \\(code 1\\) before its QMP socket answered\\n`));
  assert.match(e.message, /\n {2}command: \S+node\S* \S+fake-vm\.js fail /);
  assert.match(e.message, /\n {4}fake-vm: -netdev tap,id=n0,ifname=nosuch0: could not configure/);
});

test('a VM binary that cannot be run, or a VM that never answers on QMP, is a VmLaunchError; the latter is killed', async () => {
  const missing = await launchError(options('fail', { argv: [join(dir, 'no-such-vm')] }));
  assert.match(missing.message, /could not start: .*ENOENT/);
  assert.is(missing.exit, undefined);
  const o = options('silent', { connectTimeoutMs: 300 });
  const e = await launchError(o);
  assert.match(e.message, /did not answer on QMP: .*no answer within 300 ms/);
  const pid = Number(/fake-vm: pid (\d+)/.exec(e.logTail)?.[1]);
  assert.ok(pid > 0, e.logTail);
  assert.not.ok(alive(pid), `the silent VM ${pid} was left running`);
});

test('shutdown: a VM that obeys quit exits by itself, no signal sent', async () => {
  const vm = await launchVm(options('obey'));
  assert.is(vm.qmp.greeting.QMP.version.package, 'fake-vm');
  await vm.shutdown();
  assert.equal(await vm.exited, { code: 0, signal: null });
  assert.match(logTail(vm.logPath), /fake-vm: quit$/);
});

test('shutdown: a VM deaf to quit gets SIGTERM; one that ignores SIGTERM too is killed within the bounds', async () => {
  const bounds = { quitTimeoutMs: 200, termTimeoutMs: 200 };
  const deaf = await launchVm(options('deaf', bounds));
  await deaf.shutdown();
  assert.equal(await deaf.exited, { code: null, signal: 'SIGTERM' });

  const stubborn = await launchVm(options('stubborn', bounds));
  // quit's reply, the wait after it, the wait after SIGTERM; generous slack for a busy machine.
  const limitMs = 3 * 200 + 5_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    stubborn.shutdown().then(() => 'stopped'),
    new Promise<string>((r) => { timer = setTimeout(() => r('still running'), limitMs); }),
  ]);
  clearTimeout(timer);
  assert.is(outcome, 'stopped', `shutdown took over ${limitMs} ms`);
  assert.equal(await stubborn.exited, { code: null, signal: 'SIGKILL' });
  const log = readFileSync(stubborn.logPath, 'utf8');
  assert.ok(log.indexOf('fake-vm: quit') < log.indexOf('fake-vm: SIGTERM ignored'), log);
});

test('kill() ends a VM at once and is safe to repeat', async () => {
  const vm = await launchVm(options('stubborn'));
  await vm.kill();
  assert.equal(await vm.exited, { code: null, signal: 'SIGKILL' });
  await vm.kill();
  await vm.shutdown();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
