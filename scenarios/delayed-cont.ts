import { defineScenario } from '../harness/scenario/scenario.js';

// Management starts the destination with -S and sends `cont` late (as libvirt can): netpass keeps
// caching until VM_STARTED, so the wait costs downtime but no packets.
export default defineScenario({
  name: 'delayed-cont',
  description: 'destination started with -S, cont 200 ms after completion: netpass holds every frame',
  migration: { capabilities: ['events', 'return-path', 'netpass'], contDelayMs: 200 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { lost: 0 },
});
