import { defineScenario } from '../harness/scenario/scenario.js';

// netpass on: frames that reach the paused source are cached and forwarded after VM_STARTED.
export default defineScenario({
  name: 'netpass-bridge-ping',
  description: 'netpass on, bridge layout: 1 ms ping loses nothing at switchover',
  topology: { layout: 'bridge' },
  migration: { capabilities: ['events', 'return-path', 'netpass'] },
  // A guest dirtying 20,000 pages/s makes stop-and-copy last ~15 ms: a switchover window
  // that 1 ms ping always hits (iputils backs off while replies are missing).
  guest: { dirtyRate: 20_000 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { lost: 0 },
});
