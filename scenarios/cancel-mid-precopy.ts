import { defineScenario, fault } from '../harness/scenario/scenario.js';

// migrate_cancel while RAM is still being copied: the source never paused, so it keeps running
// and nothing is lost. A bandwidth cap keeps precopy long enough to cancel in the middle.
export default defineScenario({
  name: 'cancel-mid-precopy',
  description: 'migrate_cancel during precopy: the source keeps running and loses nothing',
  guest: { memMB: 256, dirtyRate: 5000 },
  migration: { parameters: { 'max-bandwidth': 32 * 1024 * 1024 } },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  faults: [fault.cancel('active', 50)],
  expect: { lost: 0, migrationStatus: 'cancelled' },
});
