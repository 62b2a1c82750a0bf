// `switchover show`, `list --verbose` and `schema` (issue 16): what they print is what `run`
// does. The settings `list --verbose` prints under a scenario rebuild it from the defaults; every
// key `show` lists is one `--set` takes, and its value there gives the scenario back unchanged;
// `show --json` is a scenario file; `schema` prints the JSON Schema of file-format.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCatalogue } from '../../scenario/catalogue.js';
import { scenarioJsonSchema } from '../../scenario/file-format.js';
import { ALIASES, PARAM_PREFIXES, applyOverrides, defineScenario, overrideKeys, validateScenario } from '../../scenario/scenario.js';
import { settingsBeyondDefaults, setKeys, valueText } from '../show.js';
import { runCli, type CliResult } from './run-cli.js';

async function cli(argv: string[]): Promise<CliResult> {
  const r = await runCli(argv, { timeoutMs: 30_000 });
  assert.not.ok(r.timedOut, `switchover ${argv.join(' ')} did not finish`);
  return r;
}

test('the settings list --verbose prints under a scenario rebuild it from the defaults', async () => {
  for (const s of await loadCatalogue()) {
    const sets = settingsBeyondDefaults(s);
    const rebuilt = applyOverrides(defineScenario({ name: s.name, description: s.description }), sets);
    assert.equal(rebuilt, s, `${s.name} from --set ${sets.join(' --set ')}`);
  }
});

test('every key show lists is a --set key, and its value there gives the scenario back', async () => {
  for (const s of await loadCatalogue()) {
    for (const k of setKeys(s)) {
      if (k.value === undefined) continue;
      const arg = `${k.key}=${valueText(k.value)}`;
      assert.equal(applyOverrides(s, [arg]), s, `${s.name} --set ${arg}`);
    }
  }
});

test('the key table has every alias and migration parameter, and each default is accepted as a value', () => {
  const keys = setKeys();
  const names = keys.map((k) => k.key);
  for (const alias of Object.keys(ALIASES)) assert.ok(names.includes(alias), alias);
  const top = new Set(overrideKeys().map((k) => k.split(/[.[]/)[0]));
  for (const k of names) assert.ok(top.has(k.split(/[.[]/)[0]!) || k.startsWith(PARAM_PREFIXES[0]!), `${k} is not a --set key`);
  const params = overrideKeys().filter((k) => k.startsWith(PARAM_PREFIXES[0]!));
  assert.ok(params.length >= 8, params.join(' '));
  for (const p of params) assert.ok(names.includes(p), p);
  const defaults = defineScenario({ name: 'd', description: 'd' });
  for (const k of keys) {
    if (!k.whole || k.default === undefined) continue;
    assert.equal(applyOverrides(defaults, [`${k.key}=${valueText(k.default)}`]), defaults, `${k.key}=${valueText(k.default)}`);
  }
  const rate = keys.find((k) => k.key === 'rate')!;
  assert.is(rate.default, 10_000, 'an alias of a flow field shows the flow default');
  assert.ok(rate.schema.type === 'number' && rate.schema.unit === 'packets/s');
});

test('show prints the resolved scenario after --set and the keys with value, default, unit and type', async () => {
  const r = await cli(['show', 'baseline-bridge-ping', '--set', 'interval=5', '--set', 'netpass=on']);
  assert.is(r.code, 0, r.stderr);
  const json = r.stdout.slice(r.stdout.indexOf('{'), r.stdout.indexOf('\n}\n') + 2);
  const shown = JSON.parse(json) as ReturnType<typeof defineScenario>;
  assert.is(shown.traffic.flows[0]!.kind === 'ping' && shown.traffic.flows[0]!.intervalMs, 5);
  assert.ok(shown.migration.capabilities.includes('netpass'));
  assert.match(r.stdout, /^KEY +VALUE +DEFAULT +UNIT +TYPE$/m);
  assert.match(r.stdout, /^interval +5 +1 +ms +integer 1\.\.1000; sets traffic\.flows\[ping\]\.intervalMs$/m);
  assert.match(r.stdout, /^param\.downtime-limit +- +- +ms +integer 0\.\.2000000$/m);
});

test('show --json is a scenario file: it validates to the same scenario', async () => {
  const [s] = (await loadCatalogue()).filter((x) => x.name === 'cancel-mid-precopy');
  const r = await cli(['show', 'cancel-mid-precopy', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(validateScenario(JSON.parse(r.stdout), 'show --json'), s);
});

test('list --verbose prints each scenario\'s settings and the key table; show refuses a name that is not one scenario', async () => {
  const r = await cli(['list', '--verbose']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cancel-mid-precopy .*\n( {4}\S+=.*\n)* {4}faults=\[\{"kind":"cancel","at":"active","delayMs":50\}\]$/m);
  assert.match(r.stdout, /^KEY +DEFAULT +UNIT +TYPE$/m);
  const typo = await cli(['show', 'netpass-bridge-pingg']);
  assert.is(typo.code, 2);
  assert.match(typo.stderr, /did you mean "netpass-bridge-ping"/);
  const many = await cli(['show', 'netpass-*']);
  assert.is(many.code, 2);
  assert.match(many.stderr, /names \d+ scenarios; show takes one/);
});

test('schema prints the JSON Schema of scenario files', async () => {
  const r = await cli(['schema']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), scenarioJsonSchema());
});

test.run();
