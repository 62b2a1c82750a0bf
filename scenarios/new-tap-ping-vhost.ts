import { defineScenario } from '../harness/scenario/scenario.js';

// QEMU's test_tap_migration.py variant new-tap-ping-vhost. vhost is not emulated by the engine, so
// there it reports unsupported, never pass.
export default defineScenario({
  name: 'new-tap-ping-vhost',
  description: 'new TAP on the destination, vhost on: loses frames at switchover (QEMU test variant)',
  topology: { layout: 'routed', vhost: true },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { minLost: 1 },
});
