import { defineScenario } from '../harness/scenario/scenario.js';

// With announce-rounds 0 nobody tells the bridge that the guest MAC moved to tap1: frames keep
// going to tap0 until the FDB entry ages out or the guest itself sends something.
export default defineScenario({
  name: 'announce-disabled',
  description: 'announce-rounds 0: a blackhole after switchover until the FDB ages or the guest speaks',
  migration: { parameters: { 'announce-rounds': 0 } },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { minLost: 1 },
});
