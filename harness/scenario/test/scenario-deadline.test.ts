// Issue 17: a scenario's deadline (`deadlineMs`, `--set deadline=`, expect.maxLostOrLate) and the
// netpass variant parameters (x-netpass-trigger, -order, -max-age-ms, their --set aliases), which
// are refused without the netpass capability: a setting that is accepted must have an effect.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { InputError, applyOverrides, defineScenario, parseDeadlineMs, unsupportedReason, validateScenario } from '../scenario.js';
import { setKeys } from '../../cli/show.js';
import type { BackendFeatures } from '../types.js';

const plain = defineScenario({ name: 'demo', description: 'a demo' });
const withNetpass = defineScenario({ name: 'np', description: 'netpass', migration: { capabilities: ['events', 'return-path', 'netpass'] } });

function refused(run: () => unknown, message: RegExp, what: string): void {
  try {
    run();
    assert.unreachable(`${what}: accepted`);
  } catch (err) {
    assert.instance(err, InputError, what);
    assert.match((err as Error).message, message, what);
  }
}

const FORMS = /expected a deadline like 20ms, 20 \(ms\) or 0\.02s, got/;

test('deadline alias: 20ms, 20 (ms) and 0.02s all mean 20 ms; seconds convert without binary noise', () => {
  for (const v of ['20ms', '20', '0.02s', '.02s', '20.0']) assert.is(applyOverrides(plain, [`deadline=${v}`]).deadlineMs, 20, v);
  assert.is(applyOverrides(plain, ['deadline=0.0015s']).deadlineMs, 1.5);
  assert.is(applyOverrides(plain, ['deadline=0.5']).deadlineMs, 0.5);
  assert.is(plain.deadlineMs, undefined, 'no deadline unless set');
  assert.is(parseDeadlineMs('60s', 'x'), 60_000);
});

test('deadline alias: any other form is an InputError naming the accepted forms', () => {
  for (const v of ['20 ms', '20/s', '20 ms/s', '20us', 'fast', '-5', '', '1e1', '20MS', '0x14']) {
    refused(() => applyOverrides(plain, [`deadline=${v}`]), FORMS, `deadline=${v}`);
  }
  refused(() => applyOverrides(plain, ['deadline=20 ms']), /^--set deadline=20 ms: deadline: expected a deadline like/, 'names the --set');
  for (const v of ['0', '0.0001', '61s', '60001']) {
    refused(() => applyOverrides(plain, [`deadline=${v}`]), /expected a deadline from 0\.001 to 60000 ms \(20ms, 20 \(ms\) or 0\.02s\)/, `deadline=${v}`);
  }
});

test('deadlineMs in a file: a number of ms within 0.001..60000', () => {
  assert.is(validateScenario({ name: 'x', description: 'd', deadlineMs: 12.5 }, 'f.json').deadlineMs, 12.5);
  for (const v of [0, 60_001, '20ms', null]) {
    refused(() => validateScenario({ name: 'x', description: 'd', deadlineMs: v }, 'f.json'),
      /^f\.json: deadlineMs: expected a number from 0\.001 to 60000 \(ms\), got/, `deadlineMs ${JSON.stringify(v)}`);
  }
});

test('expect.maxLostOrLate needs a deadline: refused without, accepted with', () => {
  const needs = /expect\.maxLostOrLate: expected deadlineMs to be set .*--set deadline=20ms/;
  refused(() => applyOverrides(plain, ['expect.maxLostOrLate=3']), needs, '--set without deadline');
  refused(() => validateScenario({ name: 'x', description: 'd', expect: { maxLostOrLate: 0 } }, 'f.json'), needs, 'file without deadline');
  refused(() => validateScenario({ name: 'x', description: 'd', expectByBackend: { qemu: { maxLostOrLate: 0 } } }, 'f.json'),
    /expectByBackend\.qemu\.maxLostOrLate: expected deadlineMs to be set/, 'per backend');
  const s = applyOverrides(plain, ['expect.maxLostOrLate=3', 'deadline=20ms']);
  assert.is(s.expect.maxLostOrLate, 3);
  assert.is(s.deadlineMs, 20);
  refused(() => applyOverrides(plain, ['deadline=20', 'expect.maxLostOrLate=-1']), /maxLostOrLate: expected an integer from 0/, 'negative');
});

test('x-netpass-* parameters: refused without the netpass capability, with the message saying what to add', () => {
  for (const [key, param, value] of [
    ['netpass-trigger', 'x-netpass-trigger', 'first-tx'],
    ['netpass-order', 'x-netpass-order', 'backlog-first'],
    ['netpass-max-age', 'x-netpass-max-age-ms', '50'],
  ] as const) {
    const message = new RegExp(`migration\\.parameters\\.${param}: ${param} has no effect without the netpass capability; add --set netpass=on`);
    refused(() => applyOverrides(plain, [`${key}=${value}`]), message, `${key} without netpass`);
    refused(() => applyOverrides(plain, [`param.${param}=${value}`]), message, `param.${param} without netpass`);
    refused(() => applyOverrides(withNetpass, [`${key}=${value}`, 'netpass=off']), message, `${key} then netpass=off`);
    // Order does not matter: the rule is checked on the result.
    assert.ok(applyOverrides(plain, [`${key}=${value}`, 'netpass=on']).migration.parameters[param] !== undefined, `${key} then netpass=on`);
  }
});

test('x-netpass-* parameters: the aliases set them with netpass on; values are checked', () => {
  const s = applyOverrides(withNetpass, ['netpass-trigger=first-tx', 'netpass-order=backlog-first', 'netpass-max-age=2s']);
  assert.equal(s.migration.parameters, { 'x-netpass-trigger': 'first-tx', 'x-netpass-order': 'backlog-first', 'x-netpass-max-age-ms': 2000 });
  assert.is(applyOverrides(withNetpass, ['netpass-max-age=0']).migration.parameters['x-netpass-max-age-ms'], 0, '0 = no limit');
  refused(() => applyOverrides(withNetpass, ['netpass-order=backlog']), /x-netpass-order: expected one of "as-series", "backlog-first"/, 'bad order');
  refused(() => applyOverrides(withNetpass, ['netpass-trigger=tx']), /x-netpass-trigger: expected one of "vm-started", "first-tx"/, 'bad trigger');
  refused(() => applyOverrides(withNetpass, ['netpass-max-age=60001']), /x-netpass-max-age-ms: expected an integer from 0 to 60000 \(ms\)/, 'too old');
  const file = validateScenario({
    name: 'x', description: 'd', migration: { capabilities: ['events', 'return-path', 'netpass'], parameters: { 'x-netpass-order': 'backlog-first' } },
  }, 'f.json');
  assert.is(file.migration.parameters['x-netpass-order'], 'backlog-first');
  // A backend without the parameter reports the scenario unsupported, naming it.
  const features: BackendFeatures = {
    accelerator: 'kvm', version: '10.0.0', capabilities: ['events', 'return-path', 'netpass'], parameters: ['downtime-limit'], incomingFds: false, vhost: true,
  };
  assert.is(unsupportedReason(s, 'qemu', features), 'qemu 10.0.0 lacks migration parameter "x-netpass-trigger"');
});

test('switchover show lists deadline, deadlineMs and the netpass aliases with their values', () => {
  const keys = new Map(setKeys(applyOverrides(withNetpass, ['deadline=0.02s', 'netpass-order=backlog-first'])).map((k) => [k.key, k]));
  assert.is(keys.get('deadline')?.value, 20);
  assert.match(keys.get('deadline')!.note!, /deadlineMs/);
  assert.is(keys.get('deadlineMs')?.value, 20);
  assert.is(keys.get('netpass-order')?.value, 'backlog-first');
  assert.is(keys.get('netpass-trigger')?.value, undefined);
  assert.ok(keys.has('netpass-max-age') && keys.has('param.x-netpass-max-age-ms') && keys.has('expect.maxLostOrLate'));
});

test.run();
