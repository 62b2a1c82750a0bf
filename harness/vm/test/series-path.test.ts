// The qemu backend's patched-QEMU path, against the engine, which speaks the same QMP: engine
// VMs started with no NIC on their command line are probed as the qemu backend probes a
// binary, get their NICs from plugNicAsSeries as the v12 series' test plugs them, and migrate
// locally over a UNIX socket. The destination never opens a TAP: it gets the source's fds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { engineArgv } from '../../../lib/engine-argv.js';
import type { QmpClient } from '../../../lib/qmp-client.js';
import type { MigrationInfo } from '../../../lib/qmp-protocol.js';
import { startEngineVm } from '../engine.js';
import { plugNicAsSeries } from '../qemu.js';
import { patchedForLocal, probeQmpFeatures } from '../qmp-features.js';
import { withTopology, type Topology } from '../../net/topology.js';
import { startPing } from '../../traffic/ping.js';
import type { VmSpec } from '../../scenario/types.js';

const privileged = requirePrivilege('series-path tests (engine VMs on a real TAP)');
const ptest = privileged ? test : test.skip;

const MAC = '52:54:00:12:34:56';

function spec(topo: Topology, name: string, queues: number, incoming?: string): VmSpec {
  return {
    name, netns: topo.hostNs, runDir: topo.runDir, tap: { ifname: topo.tap0, queues, vhost: false },
    mac: MAC, ip: `${topo.guestIp}/${topo.guestPrefix}`, memMB: 32, dirtyRate: 1000, local: true,
    ...(incoming ? { incoming } : {}),
  };
}

/** An engine VM with no -netdev/-device: the NIC comes over QMP. Started -S, as the series' test starts QEMU. */
async function launchBare(s: VmSpec): ReturnType<typeof startEngineVm> {
  const qmpPath = join(s.runDir, `${s.name}.qmp`);
  const argv = engineArgv({
    name: s.name, memMB: s.memMB, qmpPath, guest: { ip: s.ip, dirtyRate: s.dirtyRate }, paused: true,
    ...(s.incoming ? { incoming: 'defer' } : {}),
  });
  assert.not.ok(argv.includes('-netdev') || argv.includes('-device'), argv.join(' '));
  return startEngineVm(s.name, argv, { netns: s.netns, runDir: s.runDir, qmpPath });
}

async function waitMigration(qmp: QmpClient, want: string[]): Promise<MigrationInfo> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const info = await qmp.execute('query-migrate');
    if (info.status && want.includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration still ${info.status} after 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The interfaces TAP fds of process `pid` are attached to (tun's fdinfo `iff:` line), when this process may read them. */
function tapFdsOf(pid: number): string[] | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = `/proc/${pid}/fdinfo`;
  return readdirSync(dir).flatMap((fd) => {
    try {
      return /^iff:\s+(\S+)$/m.exec(readFileSync(join(dir, fd), 'utf8'))?.[1] ?? [];
    } catch {
      return [];
    }
  });
}

async function links(topo: Topology): Promise<string[]> {
  const r = await topo.exec('host', ['ip', '-o', 'link', 'show']);
  return r.stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter(Boolean).sort();
}

for (const queues of [1, 2]) {
  ptest(`the series' path on engine VMs (${queues} queue${queues > 1 ? 's' : ''}): probed as patched, NICs plugged over QMP, a local migration hands the TAP fds over`, () =>
    withTopology({ layout: 'bridge', queues }, async (topo) => {
      const uri = `unix:${join(topo.runDir, 'mig.sock')}`;
      const srcSpec = spec(topo, 'src', queues);
      const dstSpec = spec(topo, 'dst', queues, 'defer');
      const src = await launchBare(srcSpec);
      const dst = await launchBare(dstSpec);
      try {
        for (const vm of [src, dst]) {
          const f = await probeQmpFeatures(vm.qmp);
          assert.ok(f.capabilities.includes('netpass'), f.capabilities.join(' '));
          assert.ok(f.parameters.includes('local'), f.parameters.join(' '));
          assert.is(f.incomingFds, true, 'query-qmp-schema shows a type with incoming-fds');
          assert.ok(patchedForLocal(f));
        }
        const before = await links(topo);
        await plugNicAsSeries(src.qmp, srcSpec, { local: true, incoming: false });
        await src.qmp.execute('cont');
        assert.is((await startPing(topo, { dst: topo.guestIp, intervalMs: 10, count: 5 }).result).received, 5, 'the source answers on its QMP-plugged NIC');

        await plugNicAsSeries(dst.qmp, dstSpec, { local: true, incoming: true });
        assert.equal((await dst.qmp.execute('query-migrate-parameters')).local, true);
        assert.equal((await dst.qmp.execute('query-migrate-capabilities')).filter((c) => c.state).map((c) => c.capability).sort(), ['events', 'x-ignore-shared']);
        assert.equal(tapFdsOf(dst.pid) ?? [], [], 'the destination opened no TAP');

        const during = startPing(topo, { dst: topo.guestIp, intervalMs: 5, count: 200 });
        await dst.qmp.execute('migrate-incoming', { uri });
        await src.qmp.execute('migrate', { uri });
        const info = await waitMigration(src.qmp, ['completed', 'failed']);
        assert.is(info.status, 'completed', JSON.stringify(info));
        await waitMigration(dst.qmp, ['completed']);
        assert.is((await dst.qmp.execute('query-status')).status, 'paused');
        await dst.qmp.execute('cont');
        const p = await during.result;
        // Local migration: the frames queued in the kernel while the guest was paused are read by
        // the destination, on the same TAP.
        assert.is(p.received, p.transmitted, `lost ${p.lostSeqs.length} of ${p.transmitted} pings across the local migration`);

        const fds = tapFdsOf(dst.pid);
        if (fds) assert.equal(fds, Array(queues).fill(topo.tap0), 'the destination holds the source\'s TAP queues');
        await src.shutdown();
        assert.is((await startPing(topo, { dst: topo.guestIp, intervalMs: 10, count: 10 }).result).received, 10, 'the destination answers with the source gone');
        assert.equal(await links(topo), before, 'no TAP was created for the destination');
      } finally {
        await src.kill();
        await dst.kill();
      }
    }));
}

test.run();
