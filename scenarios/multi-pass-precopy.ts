import { defineScenario } from '../harness/scenario/scenario.js';

// Dirtying 80 MiB/s against a 256 MiB/s link and a 20 ms downtime limit takes several
// precopy passes to converge (each pass re-sends what the last one dirtied).
export default defineScenario({
  name: 'multi-pass-precopy',
  description: 'netpass on, a guest dirtying 20,000 pages/s: several precopy passes, then no loss',
  guest: { memMB: 256, dirtyRate: 20_000 },
  migration: {
    capabilities: ['events', 'return-path', 'netpass'],
    parameters: { 'downtime-limit': 20, 'max-bandwidth': 256 * 1024 * 1024 },
  },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }], durationMs: 3000 },
  expect: { lost: 0, minPasses: 2 },
});
