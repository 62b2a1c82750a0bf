import { defineScenario } from '../harness/scenario/scenario.js';

// The same run as netpass-bridge-ping with netpass off: the loss at switchover is the point.
export default defineScenario({
  name: 'baseline-bridge-ping',
  description: 'netpass off, bridge layout: 1 ms ping loses the frames that reach the paused source',
  topology: { layout: 'bridge' },
  // A guest dirtying 20,000 pages/s makes stop-and-copy last ~15 ms: a switchover window
  // that 1 ms ping always hits (iputils backs off while replies are missing).
  guest: { dirtyRate: 20_000 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { minLost: 1 },
  // Real QEMU 7.2 loses only the frames that reach the stopped source during stop-and-copy
  // (1-3 at 1 ms here, sometimes none): the run reports what it measures; the bound only
  // catches a broken network (the whole 2 s of traffic is 2000 pings).
  expectByBackend: { qemu: { lost: 1000 } },
});
