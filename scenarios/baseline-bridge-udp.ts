import { defineScenario } from '../harness/scenario/scenario.js';

// The same run as netpass-bridge-udp with netpass off: the loss at switchover is the point.
export default defineScenario({
  name: 'baseline-bridge-udp',
  description: 'netpass off, bridge layout: 10,000 UDP packets/s into the guest loses the frames that reach the paused source',
  topology: { layout: 'bridge' },
  traffic: { flows: [{ kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { minLost: 1 },
});
