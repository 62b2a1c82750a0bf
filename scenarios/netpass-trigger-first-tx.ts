import { defineScenario } from '../harness/scenario/scenario.js';

// The review's proposed trigger (issue 17, engine only): x-netpass-trigger=first-tx. The
// source forwards when the destination guest sends its first frame on the NIC; that frame and
// the guest's next ones wait until the backlog is in. It claims the backlog reaches a guest
// that is ready for it: nothing lost, as with VM_STARTED (netpass-trigger-vm-started).
export default defineScenario({
  name: 'netpass-trigger-first-tx',
  description: "netpass forwarding on the destination guest's first frame, cont 300 ms late, 1 ms ping: nothing lost",
  migration: { capabilities: ['events', 'return-path', 'netpass'], parameters: { 'x-netpass-trigger': 'first-tx' }, contDelayMs: 300 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  deadlineMs: 20,
  expect: { lost: 0 },
});
