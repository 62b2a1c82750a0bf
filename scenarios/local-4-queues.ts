import { defineScenario } from '../harness/scenario/scenario.js';

// Local migration with a multi-queue TAP (IFF_MULTI_QUEUE): all four fds travel.
export default defineScenario({
  name: 'local-4-queues',
  description: 'local migration of a 4-queue TAP: all four fds move, 1 ms ping + UDP lose nothing',
  topology: { layout: 'routed', queues: 4 },
  migration: { local: true, transport: 'unix' },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  expect: { lost: 0 },
});
