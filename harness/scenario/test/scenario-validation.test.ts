import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAULT_PHASES, InputError, applyOverrides, contDelayMs, defineScenario, effectiveExpectations, fault, requirements,
  unsupportedReason, validateScenario,
} from '../scenario.js';
import type { BackendFeatures } from '../types.js';

// Issue 9: a table of bad scenario inputs, each with its exact message.
const base = { name: 'demo', description: 'a demo' };
const BAD: Array<[string, unknown, string]> = [
  ['not an object', 'ping',
    'expected a scenario object (defineScenario({...}) or JSON), got "ping"'],
  ['missing name', { description: 'd' },
    'name: expected a name of lowercase letters, digits and "-" (at most 63, not starting with "-"), got nothing'],
  ['bad name', { ...base, name: 'Demo Scenario' },
    'name: expected a name of lowercase letters, digits and "-" (at most 63, not starting with "-"), got "Demo Scenario"'],
  ['injection name', { ...base, name: 'tap0; rm -rf /' },
    'name: expected a name of lowercase letters, digits and "-" (at most 63, not starting with "-"), got "tap0; rm -rf /"'],
  ['multi-line description', { ...base, description: 'one\ntwo' },
    'description: expected one line of text (1 to 160 characters), got "one\\ntwo"'],
  ['layout typo', { ...base, topology: { layout: 'briddge' } },
    'topology.layout: expected one of "bridge", "routed", got "briddge" (did you mean "bridge"?)'],
  ['unknown topology field', { ...base, topology: { layuot: 'bridge' } },
    'topology.layuot: unknown field; did you mean "layout"?'],
  ['queues zero', { ...base, topology: { queues: 0 } },
    'topology.queues: expected an integer from 1 to 16, got 0'],
  ['queues string', { ...base, topology: { queues: '4' } },
    'topology.queues: expected an integer from 1 to 16, got "4"'],
  ['vhost string', { ...base, topology: { vhost: 'yes' } },
    'topology.vhost: expected true or false, got "yes"'],
  ['mem too small', { ...base, guest: { memMB: 8 } },
    'guest.memMB: expected an integer from 16 to 65536 (MiB), got 8'],
  ['dirty rate fraction', { ...base, guest: { dirtyRate: 1.5 } },
    'guest.dirtyRate: expected an integer from 0 to 10000000 (pages/s), got 1.5'],
  ['unknown capability', { ...base, migration: { capabilities: ['events', 'netpas'] } },
    'migration.capabilities[1]: expected one of "events", "return-path", "x-ignore-shared", "pause-before-switchover", "netpass", got "netpas" (did you mean "netpass"?)'],
  ['duplicate capability', { ...base, migration: { capabilities: ['events', 'events'] } },
    'migration.capabilities[1]: expected each value once, got "events" again'],
  ['netpass without return-path', { ...base, migration: { capabilities: ['events', 'netpass'] } },
    'migration.capabilities: expected "return-path" as well when "netpass" is on (netpass waits for the return path\'s VM_STARTED), got ["events","netpass"]'],
  ['netpass with vhost', { ...base, topology: { vhost: true }, migration: { capabilities: ['return-path', 'netpass'] } },
    'topology.vhost: expected false when migration.capabilities has "netpass" (net filters cannot see vhost queues), got true'],
  ['unknown parameter', { ...base, migration: { parameters: { 'downtime-limt': 100 } } },
    'migration.parameters.downtime-limt: unknown field; did you mean "downtime-limit"?'],
  ['local as parameter', { ...base, migration: { parameters: { local: true } } },
    'migration.parameters.local: unknown field; set migration.local instead (the harness sets the `local` parameter on both sides)'],
  ['downtime-limit too large', { ...base, migration: { parameters: { 'downtime-limit': 3000000 } } },
    'migration.parameters.downtime-limit: expected an integer from 0 to 2000000 (ms), got 3000000'],
  ['announce-step zero', { ...base, migration: { parameters: { 'announce-step': 0 } } },
    'migration.parameters.announce-step: expected an integer from 1 to 10000 (ms), got 0'],
  ['local over tcp', { ...base, migration: { local: true, transport: 'tcp' } },
    'migration.transport: expected "unix" when migration.local is true (the TAP fds travel over a UNIX socket), got "tcp"'],
  ['hops zero', { ...base, migration: { hops: 0 } },
    'migration.hops: expected an integer from 1 to 100, got 0'],
  ['interval string', { ...base, traffic: { flows: [{ kind: 'ping', intervalMs: 'fast' }] } },
    'traffic.flows[0].intervalMs: expected an integer from 1 to 1000 (ms), got "fast"'],
  ['interval zero', { ...base, traffic: { flows: [{ kind: 'ping', intervalMs: 0 }] } },
    'traffic.flows[0].intervalMs: expected an integer from 1 to 1000 (ms), got 0'],
  ['flow kind', { ...base, traffic: { flows: [{ kind: 'tcp' }] } },
    'traffic.flows[0].kind: expected one of "ping", "udp", got "tcp"'],
  ['udp field on ping', { ...base, traffic: { flows: [{ kind: 'ping', rate: 100 }] } },
    'traffic.flows[0].rate: unknown field; known fields: kind, intervalMs'],
  ['udp rate too high', { ...base, traffic: { flows: [{ kind: 'udp', rate: 1000000 }] } },
    'traffic.flows[0].rate: expected an integer from 1 to 100000 (packets/s), got 1000000'],
  ['udp direction', { ...base, traffic: { flows: [{ kind: 'udp', direction: 'inbound' }] } },
    'traffic.flows[0].direction: expected one of "to-guest", "from-guest", "both", got "inbound"'],
  ['no flows', { ...base, traffic: { flows: [] } },
    'traffic.flows: expected a list of at least 1, got []'],
  ['flows not a list', { ...base, traffic: { flows: { kind: 'ping' } } },
    'traffic.flows: expected a list of at least 1, got an object'],
  ['migrate after end', { ...base, traffic: { durationMs: 1000, migrateAfterMs: 1000 } },
    'traffic.migrateAfterMs: expected less than traffic.durationMs (1000), got 1000'],
  ['fault kind typo', { ...base, faults: [{ kind: 'kill-dest', at: 'active' }] },
    'faults[0].kind: expected one of "kill-destination", "cut-channel", "cancel", "delay-cont", "drop-announce", "pause-destination-tap", got "kill-dest"'],
  ['fault without phase', { ...base, faults: [{ kind: 'cancel' }] },
    'faults[0].at: expected one of "setup", "active", "pre-switchover", "device", "completed", "after-completion", got nothing'],
  ['fault bad phase', { ...base, faults: [{ kind: 'cancel', at: 'precopy' }] },
    'faults[0].at: expected one of "setup", "active", "pre-switchover", "device", "completed", "after-completion", got "precopy"'],
  ['delay-cont without delay', { ...base, faults: [{ kind: 'delay-cont' }] },
    'faults[0].delayMs: expected an integer from 0 to 60000 (ms), got nothing'],
  ['delay-cont twice', { ...base, migration: { contDelayMs: 100 }, faults: [{ kind: 'delay-cont', delayMs: 100 }] },
    'faults[0]: expected no delay-cont fault when migration.contDelayMs is set (100), got one'],
  ['drop-announce with phase', { ...base, faults: [{ kind: 'drop-announce', at: 'active' }] },
    'faults[0].at: unknown field; known fields: kind'],
  ['expectation typo', { ...base, expect: { lots: 0 } },
    'expect.lots: unknown field; did you mean "lost"?'],
  ['negative lost', { ...base, expect: { lost: -1 } },
    'expect.lost: expected an integer from 0 to 10000000, got -1'],
  ['lost and minLost contradict', { ...base, expect: { lost: 0, minLost: 1 } },
    'expect.minLost: expected no more than lost (0) when both are set, got 1'],
  ['expected status', { ...base, expect: { migrationStatus: 'done' } },
    'expect.migrationStatus: expected one of "completed", "failed", "cancelled", got "done"'],
  ['unknown backend', { ...base, expectByBackend: { kvm: { lost: 0 } } },
    'expectByBackend.kvm: unknown field; known fields: engine, qemu'],
  ['unknown top-level', { ...base, topolgy: {} },
    'topolgy: unknown field; did you mean "topology"?'],
];

test('every bad input is refused with its exact message: file, field, expected, got', () => {
  for (const [what, input, message] of BAD) {
    try {
      validateScenario(input, 'scenarios/demo.ts');
      assert.unreachable(`${what}: accepted`);
    } catch (err) {
      assert.instance(err, InputError, what);
      assert.is((err as Error).message, `scenarios/demo.ts: ${message}`, what);
    }
  }
});

test('defineScenario fills the documented defaults and keeps what the file states', () => {
  const s = defineScenario({ name: 'demo', description: 'd', traffic: { flows: [{ kind: 'udp' }, { kind: 'ping', intervalMs: 2 }] } });
  assert.equal(s.topology, { layout: 'bridge', queues: 1, vhost: false });
  assert.equal(s.guest, { memMB: 256, dirtyRate: 2000 });
  assert.equal(s.migration, { capabilities: ['events', 'return-path'], parameters: {}, local: false });
  assert.equal(s.traffic.flows, [{ kind: 'udp', rate: 10_000, direction: 'to-guest' }, { kind: 'ping', intervalMs: 2 }]);
  assert.is(s.traffic.durationMs, 600);
  assert.is(s.traffic.migrateAfterMs, 200);
  assert.equal(s.faults, []);
  assert.equal(validateScenario(s, 'x'), s, 'a defined scenario validates to itself');
});

test('defaults never leak between scenarios', () => {
  const a = defineScenario({ name: 'a', description: 'a' });
  a.migration.capabilities.push('netpass');
  a.topology.queues = 4;
  const b = defineScenario({ name: 'b', description: 'b' });
  assert.equal(b.migration.capabilities, ['events', 'return-path']);
  assert.is(b.topology.queues, 1);
});

test('a JSON scenario gets the same defaults as a TypeScript one', () => {
  const fromJson = validateScenario(JSON.parse('{"name":"j","description":"d","guest":{"dirtyRate":5}}'), 'j.json');
  assert.equal(fromJson, defineScenario({ name: 'j', description: 'd', guest: { dirtyRate: 5 } }));
});

test('effectiveExpectations layers the backend override; a loss override replaces both loss bounds', () => {
  const s = defineScenario({
    name: 'demo', description: 'd',
    expect: { lost: 0, maxOutageMs: 50 },
    expectByBackend: { qemu: { minLost: 1 } },
  });
  assert.equal(effectiveExpectations(s, 'engine'), { migrationStatus: 'completed', lost: 0, maxOutageMs: 50 });
  assert.equal(effectiveExpectations(s, 'qemu'), { migrationStatus: 'completed', maxOutageMs: 50, minLost: 1 });
  const cancelled = defineScenario({ name: 'c', description: 'd', expect: { migrationStatus: 'cancelled' } });
  assert.is(effectiveExpectations(cancelled, 'engine').migrationStatus, 'cancelled');
});

test('a backend override that contradicts itself is refused at load', () => {
  const s = defineScenario({ name: 'demo', description: 'd', expect: { minLost: 5 }, expectByBackend: { qemu: { lost: 0, minLost: 1 } } });
  assert.throws(() => validateScenario(s, 'f.ts'),
    (e: Error) => e.message === 'f.ts: expectByBackend.qemu.minLost: expected no more than lost (0) when both are set, got 1');
});

const engine: BackendFeatures = {
  accelerator: 'engine', version: '0.1.0', capabilities: ['events', 'return-path', 'x-ignore-shared', 'netpass'],
  parameters: ['downtime-limit', 'max-bandwidth', 'announce-rounds', 'local'], incomingFds: true, vhost: false,
};
const qemu72: BackendFeatures = {
  accelerator: 'tcg', version: '7.2.0', capabilities: ['events', 'return-path', 'x-ignore-shared'],
  parameters: ['downtime-limit', 'max-bandwidth', 'announce-rounds'], incomingFds: false, vhost: true,
};

test('unsupportedReason names the missing feature, from requires and from what the settings imply', () => {
  const netpass = defineScenario({ name: 'n', description: 'd', migration: { capabilities: ['events', 'return-path', 'netpass'] } });
  assert.is(unsupportedReason(netpass, 'engine', engine), undefined);
  assert.is(unsupportedReason(netpass, 'qemu', qemu72), 'qemu 7.2.0 lacks migration capability "netpass"');
  const local = defineScenario({ name: 'l', description: 'd', migration: { local: true } });
  assert.match(unsupportedReason(local, 'qemu', qemu72) ?? '', /cannot migrate TAP fds locally/);
  const vhost = defineScenario({ name: 'v', description: 'd', topology: { vhost: true } });
  assert.is(unsupportedReason(vhost, 'engine', engine), 'the engine does not emulate vhost-net (topology.vhost is on)');
  assert.is(unsupportedReason(vhost, 'qemu', qemu72), undefined);
  const param = defineScenario({ name: 'p', description: 'd', migration: { parameters: { 'netpass-max-bytes': 1024 } } });
  assert.is(unsupportedReason(param, 'qemu', qemu72), 'qemu 7.2.0 lacks migration parameter "netpass-max-bytes"');
  const both = defineScenario({ name: 'b', description: 'd', traffic: { flows: [{ kind: 'udp', direction: 'both' }] } });
  assert.is(unsupportedReason(both, 'qemu', qemu72), undefined, 'the QEMU guest echoes, sinks and sends UDP (harness/vm/guest/guest-udp.c)');
  const explicit = defineScenario({ name: 'e', description: 'd', requires: { capabilities: ['x-ignore-shared'] } });
  assert.is(unsupportedReason(explicit, 'qemu', { ...qemu72, capabilities: ['events', 'return-path'] }), 'qemu 7.2.0 lacks migration capability "x-ignore-shared"');
});

test('requirements follow the settings, so --set changes them', () => {
  const s = defineScenario({ name: 'r', description: 'd', migration: { capabilities: ['events', 'return-path', 'netpass'] }, requires: { capabilities: ['x-ignore-shared'] } });
  assert.equal(requirements(s), { capabilities: ['x-ignore-shared', 'events', 'return-path', 'netpass'], local: false, vhost: false });
  assert.equal(requirements(applyOverrides(s, ['netpass=off', 'local=on'])), { capabilities: ['x-ignore-shared', 'events', 'return-path'], local: true, vhost: false });
});

test('every fault builder, at every phase, gives a step that validates', () => {
  assert.equal(FAULT_PHASES, ['setup', 'active', 'pre-switchover', 'device', 'completed', 'after-completion']);
  for (const at of FAULT_PHASES) {
    const faults = [fault.killDestination(at), fault.cutChannel(at, 10), fault.cancel(at), fault.pauseDestinationTap(100, at)];
    for (const f of faults) assert.equal(validateScenario({ name: 'f', description: 'd', faults: [f] }, 'f.ts').faults, [f]);
  }
  const rest = [fault.delayCont(200), fault.dropAnnounce()];
  assert.equal(validateScenario({ name: 'f', description: 'd', faults: rest }, 'f.ts').faults, rest);
  assert.equal(fault.pauseDestinationTap(50), { kind: 'pause-destination-tap', at: 'completed', delayMs: 50 });
});

test('contDelayMs comes from migration.contDelayMs or a delay-cont fault', () => {
  assert.is(contDelayMs(defineScenario({ name: 'a', description: 'd' })), undefined);
  assert.is(contDelayMs(defineScenario({ name: 'a', description: 'd', migration: { contDelayMs: 150 } })), 150);
  assert.is(contDelayMs(defineScenario({ name: 'a', description: 'd', faults: [{ kind: 'delay-cont', delayMs: 80 }] })), 80);
});

test.run();
