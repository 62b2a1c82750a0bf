import { defineScenario } from '../harness/scenario/scenario.js';

// QEMU's test_tap_migration.py variant local-ping (routed layout, as that test).
export default defineScenario({
  name: 'local-ping',
  description: 'local migration: the open TAP fd moves to the destination, 1 ms ping + UDP lose nothing',
  topology: { layout: 'routed' },
  migration: { local: true, transport: 'unix' },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { lost: 0 },
});
