import { defineScenario, fault } from '../harness/scenario/scenario.js';

// The destination dies during precopy: MIGRATION says failed, and the source, which never
// paused, carries on without losing a packet. A bandwidth cap keeps precopy long enough.
export default defineScenario({
  name: 'destination-crash',
  description: 'the destination is killed during precopy: migration fails, the source runs on, no loss',
  guest: { memMB: 256, dirtyRate: 5000 },
  migration: { parameters: { 'max-bandwidth': 32 * 1024 * 1024 } },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  faults: [fault.killDestination('active', 50)],
  expect: { lost: 0, migrationStatus: 'failed' },
});
