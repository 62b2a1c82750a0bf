import { defineScenario } from '../harness/scenario.js';

// The destination's guest network comes up 200 ms after the VM resumes: migration reports
// completed while the guest still cannot answer, so the outage outlasts the downtime.
export default defineScenario({
  name: 'late-guest-network',
  description: 'the destination guest network starts 200 ms late: the outage outlasts the downtime',
  guest: { memMB: 256, dirtyRate: 2000, startNetworkDelayMs: 200 },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  expect: { minLost: 1 },
});
