import { defineScenario } from '../harness/scenario/scenario.js';

// UDP both ways: netpass covers client->guest; the guest->client stream only pauses with the guest.
export default defineScenario({
  name: 'bidirectional-udp',
  description: 'netpass on: 5,000 UDP packets/s each way, client->guest and guest->client, lose nothing',
  migration: { capabilities: ['events', 'return-path', 'netpass'] },
  traffic: { flows: [{ kind: 'udp', rate: 5000, direction: 'both' }] },
  expect: { lost: 0 },
});
