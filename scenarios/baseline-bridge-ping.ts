import { defineScenario } from '../harness/scenario.js';

// The same run as netpass-bridge-ping with netpass off: the loss at switchover is the point.
export default defineScenario({
  name: 'baseline-bridge-ping',
  description: 'netpass off, bridge layout: 1 ms ping loses the frames that reach the paused source',
  topology: { layout: 'bridge' },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { minLost: 1 },
});
