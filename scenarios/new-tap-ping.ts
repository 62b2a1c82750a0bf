import { defineScenario } from '../harness/scenario/scenario.js';

// QEMU's test_tap_migration.py variant new-tap-ping (routed layout, as that test).
export default defineScenario({
  name: 'new-tap-ping',
  description: 'new TAP on the destination, netpass off: 1 ms ping + UDP lose the frames of the switch',
  topology: { layout: 'routed' },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { minLost: 1 },
});
