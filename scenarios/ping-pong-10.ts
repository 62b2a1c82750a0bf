import { defineScenario } from '../harness/scenario/scenario.js';

// Ten migrations back and forth (A->B->A...) under 1 ms ping with netpass: each switchover
// must be as clean as the first.
export default defineScenario({
  name: 'ping-pong-10',
  description: 'ten migrations back and forth under 1 ms ping with netpass: no loss on any hop',
  migration: { capabilities: ['events', 'return-path', 'netpass'], hops: 10 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }], durationMs: 1000, migrateAfterMs: 200 },
  expect: { lost: 0 },
});
