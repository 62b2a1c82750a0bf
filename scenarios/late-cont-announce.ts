import { defineScenario } from '../harness/scenario/scenario.js';

// QEMU's own measurement of a late `cont` (issue 13): destination started with -S, `cont` 700 ms
// after completion, no netpass. The announce timer starts at completion
// (process_incoming_migration_bh); the rounds due while the VM is stopped wait in the NIC's queue
// and leave together at `cont`, the rest on schedule. The ping outage is completion-to-cont plus
// the downtime. An idle guest, so both backends migrate the same workload.
export default defineScenario({
  name: 'late-cont-announce',
  description: 'netpass off, cont 700 ms after completion: the announce rounds due by then leave at cont, the outage spans the wait',
  guest: { dirtyRate: 0 },
  migration: { capabilities: ['events', 'return-path'], contDelayMs: 700 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { minLost: 20, maxOutageMs: 1200 },
});
