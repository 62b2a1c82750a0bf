import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InputError, SCENARIO_SCHEMA, applyOverrides, defineScenario, overrideKeys, validateScenario } from '../scenario.js';
import type { Schema } from '../schema.js';

const scenario = defineScenario({
  name: 'demo', description: 'a demo',
  migration: { capabilities: ['events', 'return-path', 'netpass'] },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
});

function refused(sets: string[], message: string | RegExp): void {
  try {
    applyOverrides(scenario, sets);
    assert.unreachable(`${sets.join(' ')}: accepted`);
  } catch (err) {
    assert.instance(err, InputError, sets.join(' '));
    if (typeof message === 'string') assert.is((err as Error).message, message);
    else assert.match((err as Error).message, message);
  }
}

test('aliases set the fields the issue names, with type coercion', () => {
  const s = applyOverrides(scenario, [
    'interval=2', 'rate=5k', 'mem=1G', 'dirty-rate=20000', 'capabilities=events,return-path',
    'param.downtime-limit=100', 'layout=routed', 'queues=4', 'local=on', 'duration=3s', 'migrate-after=250ms', 'hops=3',
  ]);
  assert.is(s.traffic.flows[0]!.kind === 'ping' && s.traffic.flows[0]!.intervalMs, 2);
  assert.is(s.traffic.flows[1]!.kind === 'udp' && s.traffic.flows[1]!.rate, 5000);
  assert.is(s.guest.memMB, 1024);
  assert.is(s.guest.dirtyRate, 20_000);
  assert.equal(s.migration.capabilities, ['events', 'return-path']);
  assert.equal(s.migration.parameters, { 'downtime-limit': 100 });
  assert.is(s.topology.layout, 'routed');
  assert.is(s.topology.queues, 4);
  assert.is(s.migration.local, true);
  assert.is(s.traffic.durationMs, 3000);
  assert.is(s.traffic.migrateAfterMs, 250);
  assert.is(s.migration.hops, 3);
  assert.is(scenario.guest.memMB, 256, 'the original scenario is not modified');
});

test('dot paths reach any field; JSON sets lists and objects', () => {
  const s = applyOverrides(scenario, [
    'traffic.flows[0].intervalMs=5',
    'expect.lost=0',
    'expectByBackend.qemu.minLost=1',
    'faults=[{"kind":"cancel","at":"active","delayMs":20}]',
  ]);
  assert.is(s.traffic.flows[0]!.kind === 'ping' && s.traffic.flows[0]!.intervalMs, 5);
  assert.is(s.expect.lost, 0);
  assert.equal(s.expectByBackend, { qemu: { minLost: 1 } });
  refused(['guest.startNetworkDelayMs=100'], /guest\.startNetworkDelayMs: unknown field; .*pause-destination-tap/);
  assert.equal(s.faults, [{ kind: 'cancel', at: 'active', delayMs: 20 }]);
  const flows = applyOverrides(scenario, ['traffic.flows=[{"kind":"udp","rate":100}]']).traffic.flows;
  assert.equal(flows, [{ kind: 'udp', rate: 100, direction: 'to-guest' }], 'flow defaults fill in after --set too');
});

test('netpass=on|off toggles the capability; on brings the return path it needs', () => {
  assert.equal(applyOverrides(scenario, ['netpass=off']).migration.capabilities, ['events', 'return-path']);
  const bare = applyOverrides(scenario, ['capabilities=events', 'netpass=on']);
  assert.equal(bare.migration.capabilities, ['events', 'return-path', 'netpass']);
  refused(['netpass=maybe'], '--set netpass=maybe: netpass: expected on or off, got "maybe"');
});

test('bad --set values are refused with the setting, the field, expected and got', () => {
  refused(['interval=fast'], '--set interval=fast: traffic.flows[0].intervalMs: expected an integer from 1 to 1000 (ms), got "fast"');
  refused(['traffic.flows[0].intervalMs=fast'], '--set traffic.flows[0].intervalMs=fast: traffic.flows[0].intervalMs: expected an integer from 1 to 1000 (ms), got "fast"');
  refused(['interval=-1'], '--set interval=-1: traffic.flows[0].intervalMs: expected an integer from 1 to 1000 (ms), got -1');
  refused(['rate=lots'], '--set rate=lots: traffic.flows[1].rate: expected an integer from 1 to 100000 (packets/s), got "lots"');
  refused(['mem=1T'], '--set mem=1T: guest.memMB: expected an integer from 16 to 65536 (MiB), got "1T"');
  refused(['queues=2.5'], '--set queues=2.5: topology.queues: expected an integer from 1 to 16, got 2.5');
  refused(['layout=star'], '--set layout=star: topology.layout: expected one of "bridge", "routed", got "star"');
  refused(['local=maybe'], '--set local=maybe: migration.local: expected true or false, got "maybe"');
  refused(['capabilities=events,netpas'],
    '--set capabilities=events,netpas: migration.capabilities[1]: expected one of "events", "return-path", "x-ignore-shared", "pause-before-switchover", "netpass", got "netpas" (did you mean "netpass"?)');
  refused(['param.downtime-limt=100'], '--set param.downtime-limt=100: migration.parameters.downtime-limt: unknown field; did you mean "downtime-limit"?');
  refused(['param.local=on'],
    '--set param.local=on: migration.parameters.local: unknown field; set migration.local instead (the harness sets the `local` parameter on both sides)');
  refused(['intervall=2'], '--set intervall=2: unknown setting "intervall"; did you mean "interval"?');
  refused(['interval'], '--set: expected key=value, got "interval"');
  refused(['=2'], '--set: expected key=value, got "=2"');
  refused(['traffic.flows[5].intervalMs=2'], '--set traffic.flows[5].intervalMs=2: traffic.flows[5]: expected an index below 2, got 5');
  refused(['topology.layuot=routed'], '--set topology.layuot=routed: topology.layuot: unknown field; did you mean "layout"?');
  refused(['topology=routed'], '--set topology=routed: topology: expected a JSON object or a field below it (topology.FIELD=VALUE), got "routed"');
  refused(['faults=[{"kind":'], '--set faults=[{"kind":: faults: expected JSON, got "[{\\"kind\\":" (Unexpected end of JSON input)');
  refused(['traffic..durationMs=5'], '--set traffic..durationMs=5: expected a field path like traffic.flows[0].intervalMs, got "traffic..durationMs"');
});

test('a setting that needs a flow the scenario lacks says so', () => {
  const pingOnly = defineScenario({ name: 'p', description: 'd' });
  assert.throws(() => applyOverrides(pingOnly, ['rate=100']),
    (e: Error) => e.message === '--set rate=100: traffic.flows: expected a udp flow to set rate on, got none; add one with traffic.flows=[...]');
});

test('the result is validated as a whole: cross-field rules apply after all overrides', () => {
  refused(['vhost=on'],
    'demo with --set vhost=on: topology.vhost: expected false when migration.capabilities has "netpass" (net filters cannot see vhost queues), got true');
  refused(['duration=150'], 'demo with --set duration=150: traffic.migrateAfterMs: expected less than traffic.durationMs (150), got 200');
  // Order-independent: a later override may repair what an earlier one broke.
  assert.is(applyOverrides(scenario, ['duration=150', 'migrate-after=100']).traffic.durationMs, 150);
});

test('every alias and field named by overrideKeys is accepted as a key', () => {
  for (const key of overrideKeys()) {
    try {
      applyOverrides(scenario, [`${key}=x`]);
    } catch (err) {
      assert.not.match((err as Error).message, /unknown setting/, key);
    }
  }
});

// Injection (issue 9): nothing from a scenario file or --set may reach a shell or a command
// line unchecked. Every field that takes text is an enum or a pattern, except the one-line
// description, which only ever reaches reports; this walks the schema to prove it and tries
// shell metacharacters in every other text field, by file and by --set.
const HOSTILE = ['tap0; rm -rf /', '$(id)', '`id`', 'a|b', 'x\ny', '--help', '../../etc/passwd', 'bridge && id'];

function textPaths(schema: Schema, path: string, out: Array<{ path: string; schema: Schema }>): void {
  switch (schema.type) {
    case 'object': for (const [k, f] of Object.entries(schema.fields)) textPaths(f.schema, path ? `${path}.${k}` : k, out); break;
    case 'union': for (const v of Object.values(schema.variants)) textPaths(v, path, out); break;
    case 'array': textPaths(schema.items, `${path}[0]`, out); break;
    case 'string': case 'enum': out.push({ path, schema }); break;
    default: break;
  }
}

test('injection: every text field is constrained; hostile values are refused there and in numbers', () => {
  const fields: Array<{ path: string; schema: Schema }> = [];
  textPaths(SCENARIO_SCHEMA, '', fields);
  const free = fields.filter((f) => f.schema.type === 'string').map((f) => f.path);
  assert.equal(free.sort(), ['description', 'name'], 'only name (a pattern) and description are strings');
  for (const bad of HOSTILE) {
    assert.throws(() => validateScenario({ name: bad, description: 'd' }, 'f.json'), /f\.json: name: expected a name/);
    assert.throws(() => applyOverrides(scenario, [`name=${bad}`]), /name: expected a name/);
    for (const key of ['layout', 'direction', 'transport', 'capabilities', 'param.downtime-limit', 'queues', 'mem', 'interval', 'local', 'netpass']) {
      assert.throws(() => applyOverrides(scenario, [`${key}=${bad}`]), (e: Error) => e instanceof InputError, `${key}=${bad}`);
    }
    assert.throws(() => applyOverrides(scenario, [`${bad}=1`]), (e: Error) => e instanceof InputError);
    assert.throws(() => validateScenario({ name: 'x', description: 'd', topology: { [bad]: 1 } }, 'f.json'), /unknown field/);
  }
  // The description may say anything on one line: it is data for reports, never a command.
  assert.is(validateScenario({ name: 'x', description: '$(id); rm -rf /' }, 'f.json').description, '$(id); rm -rf /');
});

test('input named like Object.prototype members is an unknown field, not a lookup into the prototype', () => {
  for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    assert.throws(() => applyOverrides(scenario, [`${key}=1`]), /unknown setting/, key);
    assert.throws(() => validateScenario(JSON.parse(`{"name":"x","description":"d","${key}":1}`), 'f.json'), /unknown field/, key);
    assert.throws(() => validateScenario({ name: 'x', description: 'd', faults: [{ kind: key }] }, 'f.json'), /faults\[0\]\.kind: expected one of/, key);
  }
});

test.run();
