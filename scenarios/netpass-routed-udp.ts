import { defineScenario } from '../harness/scenario/scenario.js';

// netpass on: frames that reach the paused source are cached and forwarded after VM_STARTED.
export default defineScenario({
  name: 'netpass-routed-udp',
  description: 'netpass on, routed layout: 10,000 UDP packets/s into the guest loses nothing at switchover',
  topology: { layout: 'routed' },
  migration: { capabilities: ['events', 'return-path', 'netpass'] },
  traffic: { flows: [{ kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { lost: 0 },
});
