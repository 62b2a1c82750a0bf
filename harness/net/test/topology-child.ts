// Helper process for topology.test.ts: builds a topology, starts long-running processes in
// both namespaces, prints the run's names as one JSON line, and waits to be interrupted
// (or, with `crash`, dies of an unhandled rejection). With `full` it also runs what a
// scenario runs: an engine VM, tcpdump on the TAP and the client veth, and ping.
import { join } from 'node:path';
import { engineBackend } from '../../vm/engine.js';
import { startCapture } from '../../capture/tcpdump.js';
import { createTopology } from '../topology.js';
import { startPing } from '../../traffic/ping.js';

const layout = process.argv[2] === 'routed' ? 'routed' : 'bridge';
const mode = process.argv[3];
const topo = await createTopology({ layout, queues: 2 });
topo.spawn('host', ['sleep', '60']);
topo.spawn('client', ['sleep', '60']);
if (mode === 'full') {
  await engineBackend.launch({
    name: 'src', netns: topo.hostNs, runDir: topo.runDir, tap: { ifname: topo.tap0, queues: 2, vhost: false },
    mac: '52:54:00:12:34:56', ip: `${topo.guestIp}/24`, ...(topo.guestGw ? { gw: topo.guestGw } : {}), memMB: 32, dirtyRate: 100,
  });
  await startCapture(topo, 'host', topo.tap0, join(topo.runDir, 'tap0.pcap'));
  await startCapture(topo, 'client', topo.clientIface, join(topo.runDir, 'client.pcap'));
  startPing(topo, { dst: topo.guestIp, intervalMs: 10, count: 6000 });
}
process.stdout.write(JSON.stringify({ names: topo.names, runDir: topo.runDir, inodes: topo.netnsInodes }) + '\n');
if (mode === 'crash') {
  // An unhandled rejection skips every pending `finally`: the cleanup registry must still run.
  setTimeout(() => void Promise.reject(new Error('simulated crash')), 100);
}
setTimeout(() => process.exit(0), 60_000);
