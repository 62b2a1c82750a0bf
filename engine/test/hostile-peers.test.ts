// Hostile peers of an engine VM (issue 18, D5, D6, D12): memory stays bounded when a peer
// never reads, a migrated device state is checked before it is loaded, and QMP arguments are
// looked up as own members only. Each test is the reproduction, asserting the right
// behaviour. The VMs run without a NIC, so no netns or TAP is needed.
//   D5  one client pipelining 1,000,000 query-status without reading: the VM's peak RSS stays
//       within RSS_GROWTH_MB of its start, another client is served meanwhile, and every reply
//       arrives once the first client reads; a client that lets events pile up is dropped; a
//       destination fed endless ping sections whose PONGs are never read closes the channel.
//   D6  a stream whose guest sender says rate 1e9, or whose fields have the wrong types, fails
//       the load with the field named; a valid migrated sender is stopped by x-guest-udp-stop.
//   D12 `migrate {"uri": ..., "toString": 1}` is "Parameter 'toString' is unexpected".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineArgv, type EngineVmOptions } from '../../lib/engine-argv.js';
import { QmpClient } from '../../lib/qmp-client.js';
import { StreamEncoder, type DeviceState } from '../migration/stream.js';
import { OUT_LIMIT } from '../qmp/server.js';
import { executeUnchecked, qmpError } from './qmp-steps.js';

const BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));
const RAM = 16 * 2 ** 20;
/** Allowed peak RSS growth: the issue saw +280 MB (QMP) and +3.8 GB (return path). */
const RSS_GROWTH_MB = 64;

interface Vm { child: ChildProcess; dir: string; qmp: string; incoming: string; stderr: () => string; exited: Promise<number | null> }

/** An engine VM with 16 MiB and no NIC; `incoming` adds -incoming on `vm.incoming`. */
function startVm(o: Pick<EngineVmOptions, 'guest' | 'paused'>, incoming = false): Vm {
  const dir = mkdtempSync(join(tmpdir(), 'swhostile-'));
  const qmp = join(dir, 'qmp.sock');
  const incomingPath = join(dir, 'in.sock');
  const argv = engineArgv({ ...o, memMB: 16, qmpPath: qmp, ...(incoming ? { incoming: `unix:${incomingPath}` } : {}) });
  const child = spawn(process.execPath, [BIN, 'vm', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-20_000); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, dir, qmp, incoming: incomingPath, stderr: () => err, exited };
}

async function stopVm(vm: Vm): Promise<void> {
  vm.child.kill('SIGKILL');
  await vm.exited;
  rmSync(vm.dir, { recursive: true, force: true });
}

/** kB of a /proc/PID/status field (VmRSS, VmHWM). */
function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

async function connect(path: string): Promise<net.Socket> {
  for (let i = 0; ; i++) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(path, () => resolve(s));
        s.once('error', reject);
      });
    } catch (e) {
      if (i > 200) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A raw QMP connection that reads only when asked: negotiates, then leaves its input unread. */
async function rawNegotiated(path: string): Promise<net.Socket> {
  const s = await connect(path);
  s.on('error', () => {});
  let seen = '';
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer): void => {
      seen += d.toString();
      if (seen.includes('"QMP"') && !seen.includes('qmp_capabilities-sent')) {
        seen += 'qmp_capabilities-sent';
        s.write('{"execute":"qmp_capabilities"}\n');
      }
      if (/"return": ?\{\}/.test(seen)) { s.off('data', onData); s.pause(); resolve(); }
    };
    s.on('data', onData);
  });
  return s;
}

test('D5: 1,000,000 pipelined query-status with no reads: bounded RSS, others served, every reply delivered', async () => {
  const vm = startVm({ paused: true });
  try {
    const probe = await QmpClient.connect(vm.qmp, { timeoutMs: 15_000 });
    const startKb = statusKb(vm.child.pid!, 'VmRSS');
    const hog = await rawNegotiated(vm.qmp);
    const N = 1_000_000;
    const line = '{"execute":"query-status"}\n';
    const batch = line.repeat(10_000);
    for (let i = 0; i < N / 10_000; i++) hog.write(batch);
    await new Promise((r) => setTimeout(r, 2_000));
    const st = await probe.execute('query-status', undefined, { timeoutMs: 5_000 });
    assert.is(st.status, 'prelaunch', 'another client is served while one does not read');
    const growthMb = (statusKb(vm.child.pid!, 'VmHWM') - startKb) / 1024;
    assert.ok(growthMb < RSS_GROWTH_MB, `peak RSS grew ${growthMb.toFixed(0)} MB (limit ${RSS_GROWTH_MB})`);
    // Backpressure, not loss: once the client reads, all its replies come, in order.
    let replies = 0, buf = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${replies} of ${N} replies within 120 s`)), 120_000);
      hog.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          if (buf.startsWith('{"return"')) replies++;
          buf = buf.slice(nl + 1);
        }
        if (replies === N) { clearTimeout(t); resolve(); }
      });
      hog.resume();
    });
    console.log(`  D5 QMP: ${N} pipelined requests unread: peak RSS +${growthMb.toFixed(1)} MB; ${replies} replies once read`);
    hog.destroy();
    await probe.close();
  } finally {
    await stopVm(vm);
  }
});

test('D5: a client that never reads while events pile up is dropped with a message', async () => {
  const vm = startVm({ paused: true });
  try {
    const deaf = await rawNegotiated(vm.qmp);
    const driver = await QmpClient.connect(vm.qmp, { timeoutMs: 15_000 });
    const startKb = statusKb(vm.child.pid!, 'VmRSS');
    // Each stop/cont pair broadcasts STOP and RESUME to the deaf client.
    for (let i = 0; i < 20_000 && !/QMP client dropped/.test(vm.stderr()); i++) {
      await driver.execute(i % 2 ? 'stop' : 'cont');
    }
    assert.match(vm.stderr(), new RegExp(`QMP client dropped: it left \\d+ bytes of replies and events unread \\(limit ${OUT_LIMIT}\\)`));
    assert.ok((await driver.execute('query-status')).status, 'the VM goes on');
    const growthMb = (statusKb(vm.child.pid!, 'VmHWM') - startKb) / 1024;
    assert.ok(growthMb < RSS_GROWTH_MB, `peak RSS grew ${growthMb.toFixed(0)} MB`);
    deaf.destroy();
    await driver.close();
  } finally {
    await stopVm(vm);
  }
});

test('D5: a destination fed endless return-path pings that are never read closes the channel', async () => {
  const dst = startVm({}, true);
  try {
    const src = await connect(dst.incoming);
    src.on('error', () => {});
    src.pause(); // the source never reads its return path
    // Settled first: the VM's RSS grows on its own while it starts.
    await (await QmpClient.connect(dst.qmp, { timeoutMs: 15_000 })).close();
    const startKb = statusKb(dst.child.pid!, 'VmRSS');
    src.write(new StreamEncoder().header({ ramSize: RAM, local: false, netpass: false, returnPath: true, queues: 1 }).flush());
    const pings = new StreamEncoder(1 << 20);
    for (let i = 0; i < 20_000; i++) pings.ping(i);
    const batch = pings.flush();
    let peakKb = 0, sent = 0;
    while (!src.destroyed && sent < 80 * 2 ** 20 && dst.child.exitCode === null) {
      if (!src.write(batch)) await new Promise((r) => { src.once('drain', r); setTimeout(r, 200); });
      sent += batch.length;
      try { peakKb = Math.max(peakKb, statusKb(dst.child.pid!, 'VmHWM')); } catch { break; }
    }
    const code = await Promise.race([dst.exited, new Promise((r) => setTimeout(() => r('running'), 10_000))]);
    assert.match(dst.stderr(), /return path: the source left \d+ bytes unread \(limit \d+\); closing the migration channel/);
    assert.is(code, 1, 'the load fails and the destination exits 1, as QEMU does');
    const growthMb = (peakKb - startKb) / 1024;
    assert.ok(growthMb < RSS_GROWTH_MB, `peak RSS grew ${growthMb.toFixed(0)} MB on ${(sent / 2 ** 20).toFixed(1)} MiB of pings`);
    console.log(`  D5 return path: ${(sent / 2 ** 20).toFixed(1)} MiB of unread pings: peak RSS +${growthMb.toFixed(1)} MB, channel closed`);
    src.destroy();
  } finally {
    await stopVm(dst);
  }
});

test('D5: a source that reads its return path gets a PONG for each of 1,000,000 pings', async () => {
  const dst = startVm({}, true);
  try {
    const src = await connect(dst.incoming);
    src.on('error', () => {});
    let rpBytes = 0;
    src.on('data', (d: Buffer) => { rpBytes += d.length; });
    src.write(new StreamEncoder().header({ ramSize: RAM, local: false, netpass: false, returnPath: true, queues: 1 }).flush());
    const pings = new StreamEncoder(1 << 20);
    for (let i = 0; i < 20_000; i++) pings.ping(i);
    const batch = pings.flush();
    for (let i = 0; i < 50; i++) if (!src.write(batch)) await new Promise((r) => src.once('drain', r));
    const PONG_BYTES = 8; // u16 type, u16 length, u32 id
    for (let waited = 0; rpBytes < 1_000_000 * PONG_BYTES && waited < 30_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    assert.is(rpBytes / PONG_BYTES, 1_000_000, `PONGs received; stderr: ${dst.stderr()}`);
    assert.not.match(dst.stderr(), /return path/, 'a source that reads is never cut off');
    src.destroy();
  } finally {
    await stopVm(dst);
  }
});

const DEVICE: DeviceState = {
  nic: { mac: '52:54:00:12:34:56', rxEnabled: true, queues: 1 },
  guest: {
    ip: '10.0.0.2', prefixLength: 24, arpCache: [], udp: [],
    extra: {
      net: {
        ip: '10.0.0.2', prefix: 24, gw: null, arp: [], udp: [],
        sender: { dst: '10.0.0.1', port: 5009, rate: 1000, count: 1_000_000, next: 0 },
      },
    },
  },
};

/** A destination loads header + device + EOF; resolves with its QMP once it runs, or its failure. */
async function migrateDevice(device: unknown): Promise<{ vm: Vm; code: number | null | 'running' }> {
  const vm = startVm({ guest: { ip: '10.0.0.2/24' } }, true);
  const src = await connect(vm.incoming);
  src.on('error', () => {});
  src.end(new StreamEncoder().header({ ramSize: RAM, local: false, netpass: false, returnPath: false, queues: 1 })
    .device(device as DeviceState).eof().flush());
  const code = await Promise.race([vm.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 1_500))]);
  return { vm, code };
}

/** DEVICE with its guest model state changed by `edit` (a JSON copy: any shape may be written). */
function withNet(edit: (net: Record<string, unknown>, state: Record<string, Record<string, unknown>>) => void): unknown {
  const state = JSON.parse(JSON.stringify(DEVICE)) as Record<string, Record<string, unknown>>;
  edit((state.guest!.extra as { net: Record<string, unknown> }).net, state);
  return state;
}

test('D6: an invalid device state fails the load with the field named; nothing is loaded', async () => {
  const flood = withNet((net) => { net.sender = { dst: '10.0.0.1', port: 5009, rate: 1e9, count: 1e15, next: 0 }; });
  const wrongType = withNet((net) => { net.ip = 5; });
  const extraMember = withNet((_net, state) => { Object.assign(state.nic!, { toString: 1 }); });
  const cases: Array<[string, unknown, RegExp]> = [
    ['sender rate 1e9', flood, /device state section at offset \d+: guest\.extra\.net\.sender\.rate: expected packets\/s in \(0, 100000\], got 1000000000/],
    ['ip of the wrong type', wrongType, /guest\.extra\.net\.ip: expected an IPv4 address, got 5/],
    ['a member the shape lacks', extraMember, /nic\.toString: expected no member of that name/],
    ['not an object', [1, 2], /device state section at offset \d+: expected an object, got \[1,2\]/],
  ];
  for (const [name, state, message] of cases) {
    const { vm, code } = await migrateDevice(state);
    try {
      assert.is(code, 1, `${name}: exit ${code}, stderr ${vm.stderr()}`);
      assert.match(vm.stderr(), /load of migration failed: /);
      assert.match(vm.stderr(), message, name);
      assert.not.match(vm.stderr(), /TypeError/, `${name}: a named field, not a TypeError`);
    } finally {
      await stopVm(vm);
    }
  }
});

test('D6: a migrated UDP sender is stopped by x-guest-udp-stop; x-guest-udp-send keeps the same bounds', async () => {
  const { vm, code } = await migrateDevice(DEVICE);
  try {
    assert.is(code, 'running', vm.stderr());
    const q = await QmpClient.connect(vm.qmp, { timeoutMs: 15_000 });
    const stopped = await q.execute('x-guest-udp-stop');
    assert.ok(typeof stopped.sent === 'number', `the migrated sender ran: ${JSON.stringify(stopped)}`);
    assert.equal(await q.execute('x-guest-udp-stop'), {}, 'nothing left to stop');
    const tooFast = await qmpError(q.execute('x-guest-udp-send', { dst: '10.0.0.1', port: 5009, rate: 1e9, count: 10 }));
    assert.match(tooFast.desc, /Parameter 'rate' expects packets\/s in \(0, 100000\]/);
    assert.equal(await q.execute('x-guest-udp-send', { dst: '10.0.0.1', port: 5009, rate: 100, count: 10 }), {});
    assert.ok(typeof (await q.execute('x-guest-udp-stop')).sent === 'number', 'a QMP-started sender stops too');
    await q.close();
  } finally {
    await stopVm(vm);
  }
});

test('D12: QMP arguments are own members only: prototype names are unexpected, as in QEMU', async () => {
  const vm = startVm({ paused: true });
  try {
    const q = await QmpClient.connect(vm.qmp, { timeoutMs: 15_000 });
    const refused = async (p: Promise<unknown>): Promise<{ class: string; desc: string }> => {
      const e = await qmpError(p);
      return { class: e.errorClass, desc: e.desc };
    };
    const proto = await refused(executeUnchecked(q, 'migrate', { uri: `unix:${join(vm.dir, 'nowhere.sock')}`, toString: 1 }));
    assert.equal(proto, { class: 'GenericError', desc: "Parameter 'toString' is unexpected" });
    // A computed key makes `__proto__` an own member, as JSON.parse does on the VM's side.
    const dunder = await refused(executeUnchecked(q, 'query-status', { ['__proto__']: { x: 1 } }));
    assert.equal(dunder, { class: 'GenericError', desc: "Parameter '__proto__' is unexpected" });
    const hasOwn = await refused(executeUnchecked(q, 'x-guest-udp-send', { dst: '10.0.0.1', port: 5009, rate: 1, count: 1, hasOwnProperty: 1 }));
    assert.equal(hasOwn, { class: 'GenericError', desc: "Parameter 'hasOwnProperty' is unexpected" });
    assert.is((await q.execute('query-status')).status, 'prelaunch', 'the VM goes on');
    await q.close();
  } finally {
    await stopVm(vm);
  }
});

test.run();
