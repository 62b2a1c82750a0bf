import { defineScenario } from '../harness/scenario/scenario.js';

// The series' order on a scenario built to reorder (issue 17): a -S destination resumed 300 ms
// after completion, 10,000 UDP echo requests/s. At `cont` the announce moves the guest MAC to
// the destination's port and its guest answers new datagrams at once, while the ~3,000 cached
// on the source still travel the migration channel: they come in behind newer ones. The
// series claims no loss, and this scenario holds it to that; harness/run/test/netpass-
// variants.test.ts checks that the order breaks here. No x- parameter, so a backend with the
// series' netpass runs it too.
export default defineScenario({
  name: 'netpass-order-as-series',
  description: 'netpass as in the series, cont 300 ms late, 10k UDP/s echo: nothing lost, the backlog arrives behind newer datagrams',
  migration: { capabilities: ['events', 'return-path', 'netpass'], contDelayMs: 300 },
  traffic: { flows: [{ kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  deadlineMs: 20,
  expect: { lost: 0 },
});
