import { defineScenario, fault } from '../harness/scenario/scenario.js';

// Management plugs the destination's network in late: its TAP stays down for 200 ms after the
// migration completes. The guest runs, and MIGRATION says completed, but nothing reaches it, so
// the outage outlasts the downtime. Host-side, so both backends can show it.
export default defineScenario({
  name: 'late-guest-network',
  description: 'the destination network comes up 200 ms after completion: the outage outlasts the downtime',
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }] },
  faults: [fault.pauseDestinationTap(200, 'completed')],
  expect: { minLost: 1 },
});
