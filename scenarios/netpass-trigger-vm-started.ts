import { defineScenario } from '../harness/scenario/scenario.js';

// The series' trigger (issue 17): the source forwards its cache when the destination reports
// VM_STARTED. 1 ms ping to a -S destination resumed 300 ms after completion: the series claims
// no loss. No x- parameter, so a backend with the series' netpass runs it too.
export default defineScenario({
  name: 'netpass-trigger-vm-started',
  description: 'netpass forwarding on VM_STARTED (the series), cont 300 ms late, 1 ms ping: nothing lost',
  migration: { capabilities: ['events', 'return-path', 'netpass'], contDelayMs: 300 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  deadlineMs: 20,
  expect: { lost: 0 },
});
