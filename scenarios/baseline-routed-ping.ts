import { defineScenario } from '../harness/scenario.js';

// The same run as netpass-routed-ping with netpass off: the loss at switchover is the point.
export default defineScenario({
  name: 'baseline-routed-ping',
  description: 'netpass off, routed layout: 1 ms ping loses the frames that reach the paused source',
  topology: { layout: 'routed' },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { minLost: 1 },
});
