// Helper process for topology.test.ts: builds a topology, starts long-running processes in
// both namespaces, prints the run's names as one JSON line, and waits to be interrupted
// (or, with `crash`, dies of an unhandled rejection).
import { createTopology } from '../topology.js';

const layout = process.argv[2] === 'routed' ? 'routed' : 'bridge';
const topo = await createTopology({ layout, queues: 2 });
topo.spawn('host', ['sleep', '60']);
topo.spawn('client', ['sleep', '60']);
process.stdout.write(JSON.stringify({ names: topo.names, runDir: topo.runDir, inodes: topo.netnsInodes }) + '\n');
if (process.argv[3] === 'crash') {
  // An unhandled rejection skips every pending `finally`: the cleanup registry must still run.
  setTimeout(() => void Promise.reject(new Error('simulated crash')), 100);
}
setTimeout(() => process.exit(0), 60_000);
