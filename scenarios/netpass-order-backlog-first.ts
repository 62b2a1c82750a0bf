import { defineScenario } from '../harness/scenario/scenario.js';

// netpass-order-as-series with x-netpass-order=backlog-first (issue 17, engine only): the
// destination holds what its own TAP delivers until the forwarded backlog is injected. It
// claims to fix the order: nothing lost and nothing reordered; the price is more delay.
export default defineScenario({
  name: 'netpass-order-backlog-first',
  description: 'netpass with backlog-first order, cont 300 ms late, 10k UDP/s echo: nothing lost and nothing reordered',
  migration: { capabilities: ['events', 'return-path', 'netpass'], parameters: { 'x-netpass-order': 'backlog-first' }, contDelayMs: 300 },
  traffic: { flows: [{ kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  deadlineMs: 20,
  expect: { lost: 0, reordered: 0 },
});
