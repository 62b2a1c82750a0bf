import { defineScenario } from '../harness/scenario/scenario.js';

// QEMU's test_tap_migration.py variant local-ping-vhost. vhost is not emulated by the engine, so
// there it reports unsupported, never pass.
export default defineScenario({
  name: 'local-ping-vhost',
  description: 'local migration, vhost on: the open TAP fds move to the destination under vhost-net',
  topology: { layout: 'routed', vhost: true },
  migration: { local: true, transport: 'unix' },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { lost: 0 },
});
