// A bounded, seeded fuzz of what a user gives `switchover run` (issue 18): scenario files (JSON,
// valid templates with hostile values put at real schema paths, unknown and prototype keys,
// missing fields, broken JSON) and `--set` values (every key `--set` knows, field paths, junk
// keys, values with units, JSON fragments, huge and tiny numbers). FUZZ_CASES cases of each
// kind (1,500 by default), FUZZ_SEED to change the seed; a failure names its case number.
// Every case must be either rejected with an InputError (one line, naming where) or accepted;
// anything else is a crash. Then:
//   - no accepted case may pass with zero analyzed flows: its expectations, judged on a result
//     that captured nothing, must fail;
//   - no case may build a network before rejecting its input: a sample of the rejected cases is
//     run through the real CLI with a private TMPDIR, which must exit 2 and hold no run dir;
//   - FUZZ_RUNS accepted cases (3 by default; short durations forced with --set) run for real,
//     one at a time: they end with a verdict (no crash), a pass has packets in its flows, and
//     the run leaves nothing behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../../fixtures/seeded-random.js';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { findScenarios, loadScenarioFile } from '../catalogue.js';
import { runNames } from '../../net/names.js';
import type { JsonReport } from '../../report/json.js';
import { SCENARIO_SCHEMA, applyOverrides, effectiveExpectations, overrideKeys } from '../scenario.js';
import { InputError, type Schema } from '../schema.js';
import { leftovers } from '../../net/topology.js';
import type { Scenario } from '../types.js';
import { checkExpectations, checkFlowsCaptured, verdictOf } from '../../verdict/verdict.js';
import { fakeResult } from '../../report/test/fake-result.js';
import { runCli } from '../../cli/test/run-cli.js';

const CASES = Number(process.env.FUZZ_CASES ?? 1500);
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed18);
const CLI_SAMPLE = 30;
const RUNS = Number(process.env.FUZZ_RUNS ?? 3);

const work = mkdtempSync(join(tmpdir(), 'switchover-fuzz-'));
const runTmp = join(work, 'tmp');
mkdirSync(runTmp);

// ---- what the schema has -------------------------------------------------------------------

/** Every field path of the scenario schema (arrays at index 0, union variants by their tag). */
function schemaPaths(): Array<{ path: string; schema: Schema }> {
  const out: Array<{ path: string; schema: Schema }> = [];
  const walk = (s: Schema, path: string): void => {
    if (path) out.push({ path, schema: s });
    if (s.type === 'array') walk(s.items, `${path}[0]`);
    else if (s.type === 'object') for (const [k, f] of Object.entries(s.fields)) walk(f.schema, path ? `${path}.${k}` : k);
    else if (s.type === 'union') for (const v of Object.values(s.variants)) walk(v, path);
  };
  walk(SCENARIO_SCHEMA, '');
  return out;
}
const PATHS = schemaPaths();

const TEMPLATES: unknown[] = [
  { name: 'fuzz-ping', description: 'fuzz', traffic: { flows: [{ kind: 'ping', intervalMs: 1 }], durationMs: 600, migrateAfterMs: 200 }, expect: { lost: 0 } },
  { name: 'fuzz-udp', description: 'fuzz', traffic: { flows: [{ kind: 'udp', rate: 1000, direction: 'both' }] }, faults: [{ kind: 'cancel', at: 'active' }], expect: { migrationStatus: 'cancelled' } },
  {
    name: 'fuzz-netpass', description: 'fuzz', topology: { layout: 'routed', queues: 2 },
    migration: { capabilities: ['events', 'return-path', 'netpass'], parameters: { 'downtime-limit': 100 } }, expect: { lost: 0, maxOutageMs: 50 },
  },
];

const HOSTILE_VALUES: unknown[] = [
  1e-300, -1e-300, 0, -0, 1e308, -1, 0.5, 1.5, 2 ** 53, 2 ** 53 + 2, 1e21, 65_536, 100_001, 600_001, Number.MAX_VALUE,
  '', 'x', '1', 'bridge', 'ping', 'completed', '$(touch /tmp/pwned)', 'a\nb', '\u0000', 'é'.repeat(70), 'k'.repeat(10_000),
  null, true, false, [], {}, [1], ['events', 'events'], { kind: 'ping' }, [[[[[]]]]], JSON.parse('{"__proto__":1}'),
];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', '', 'layuot', 'k'.repeat(5000), '1', 'flows'];

const SET_VALUES = [
  '1e-300', '-1', '0', '-0', '0.5', '1.5', '1e308', 'Infinity', 'NaN', '0x10', '5k', '5 s', '2s', '1e3ms', '', '[', '{',
  '{}', '[]', '[1,2]', '{"__proto__":{"x":1}}', '[{"kind":"ping","intervalMs":1e-300}]', 'on', 'off', 'yes', '-', 'routed',
  'netpass', 'events,events', 'events,return-path,netpass', '$(touch /tmp/pwned)', 'x'.repeat(20_000), '1'.repeat(400),
];
const SET_KEYS = [...overrideKeys(), ...PATHS.map((p) => p.path), 'traffic.flows[9].intervalMs', 'traffic..durationMs',
  'constructor', '__proto__', 'toString', 'param.', 'param.__proto__', 'param.toString', 'x'.repeat(5000), ' ', 'migration.parameters.local'];

// ---- case generators -----------------------------------------------------------------------

/** Sets `value` at a dot/index path in a JSON value, making objects on the way. */
function put(root: Record<string, unknown>, path: string, value: unknown): void {
  const segs = path.match(/[^.[\]]+|\[\d+\]/g) ?? [];
  let node: Record<string | number, unknown> = root;
  segs.forEach((seg, i) => {
    const key: string | number = seg.startsWith('[') ? Number(seg.slice(1, -1)) : seg;
    if (i === segs.length - 1) {
      Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
      return;
    }
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = typeof segs[i + 1] === 'string' && segs[i + 1]!.startsWith('[') ? [{}] : {};
    node = node[key] as Record<string | number, unknown>;
  });
}

/** A value at or near what `schema` accepts: its bounds and just past them, its enum values and typos of them. */
function nearValue(r: SeededRandom, schema: Schema): unknown {
  switch (schema.type) {
    case 'number': {
      const { min, max } = schema;
      return r.pick([min, max, min - 1, max + 1, min + (max - min) * r.next(), Math.round(min + (max - min) * r.next() ** 4), min + 0.5]);
    }
    case 'enum': {
      const v = r.pick(schema.values);
      return r.next() < 0.8 ? v : `${v.slice(0, -1)}${r.text(1)}`;
    }
    case 'boolean': return r.next() < 0.5;
    case 'array': return schema.items.type === 'enum' ? schema.items.values.filter(() => r.next() < 0.5) : [];
    default: return r.pick(HOSTILE_VALUES);
  }
}

function fileCase(r: SeededRandom): string {
  if (r.next() < 0.03) return JSON.stringify(r.pick(HOSTILE_VALUES));
  const s = JSON.parse(JSON.stringify(r.pick(TEMPLATES))) as Record<string, unknown>;
  for (let n = r.int(1, 2); n > 0; n--) {
    const { path: p, schema } = r.pick(PATHS);
    switch (r.int(0, 7)) {
      case 0: case 1: put(s, p, r.pick(HOSTILE_VALUES)); break;
      case 2: put(s, `${p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : p}.${r.pick(HOSTILE_KEYS)}`, r.pick(HOSTILE_VALUES)); break;
      case 3: delete s[r.pick(['name', 'description', 'traffic', 'expect'])]; break;
      default: put(s, p, nearValue(r, schema));
    }
  }
  const text = JSON.stringify(s);
  // A few broken files: cut short, or a stray byte.
  if (r.next() < 0.05) return text.slice(0, r.int(0, text.length - 1));
  if (r.next() < 0.03) return `${text}\u0001`;
  return text;
}

function setCase(r: SeededRandom): string[] {
  return Array.from({ length: r.int(1, 3) }, () => {
    if (r.next() < 0.05) return r.pick(['', '=', 'novalue', '=1', '==']);
    if (r.next() < 0.4) {
      const { path, schema } = r.pick(PATHS);
      const v = nearValue(r, schema);
      return `${path}=${Array.isArray(v) ? v.join(',') : typeof v === 'string' ? v : JSON.stringify(v)}`;
    }
    return `${r.pick(SET_KEYS)}=${r.next() < 0.8 ? r.pick(SET_VALUES) : String(r.int(-100, 2_000_000))}`;
  });
}

// ---- judging -----------------------------------------------------------------------------

/** A result that analysed no flow at all, with a migration that completed. */
function capturedNothing(s: Scenario): ReturnType<typeof fakeResult> {
  return { ...fakeResult({ scenario: s.name }), traffic: [], announces: [] };
}

interface Rejected { kind: 'file' | 'set'; argv: string[]; message: string }
const rejected: Rejected[] = [];
const accepted: Array<{ kind: 'file' | 'set'; argv: string[]; scenario: Scenario }> = [];
let tried = 0;

function judge(kind: 'file' | 'set', i: number, argv: string[], outcome: { scenario?: Scenario; error?: unknown }): void {
  tried++;
  const what = `${kind} case ${i} (seed ${SEED}): ${argv.join(' ').slice(0, 300)}`;
  if (outcome.error !== undefined) {
    const e = outcome.error;
    assert.ok(e instanceof InputError, `${what}: crashed instead of refusing: ${e instanceof Error ? e.stack : String(e)}`);
    const message = (e as InputError).message;
    assert.not.match(message, /\n/, `${what}: a multi-line message`);
    assert.ok(message.length < 1000, `${what}: a ${message.length}-character message`);
    rejected.push({ kind, argv, message });
    return;
  }
  const s = outcome.scenario!;
  const nothing = capturedNothing(s);
  const checks = [...checkExpectations(nothing, effectiveExpectations(s, 'engine')), ...checkFlowsCaptured(s.traffic.flows, nothing)];
  assert.is(verdictOf(checks), 'fail', `${what}: would pass with zero analyzed flows`);
  accepted.push({ kind, argv, scenario: s });
}

test('scenario files: every case is refused with a one-line InputError or accepted, and none passes on no traffic', async () => {
  const r = new SeededRandom(SEED);
  for (let i = 0; i < CASES; i++) {
    const file = join(work, `case-${i}.json`);
    writeFileSync(file, fileCase(r));
    let outcome: { scenario?: Scenario; error?: unknown };
    try {
      outcome = { scenario: await loadScenarioFile(file) };
    } catch (error) {
      outcome = { error };
    }
    judge('file', i, ['run', file], outcome);
  }
});

test('--set values: every case is refused with a one-line InputError or accepted, and none passes on no traffic', async () => {
  const r = new SeededRandom(SEED + 1);
  const bases = await findScenarios(['baseline-bridge-ping', 'netpass-bridge-udp', 'cancel-mid-precopy']);
  for (let i = 0; i < CASES; i++) {
    const base = r.pick(bases);
    const sets = setCase(r);
    let outcome: { scenario?: Scenario; error?: unknown };
    try {
      outcome = { scenario: applyOverrides(base, sets) };
    } catch (error) {
      outcome = { error };
    }
    judge('set', i, ['run', base.name, ...sets.flatMap((v) => ['--set', v])], outcome);
  }
  console.log(`  fuzz: ${tried} cases tried (seed ${SEED}), ${rejected.length} rejected, ${accepted.length} accepted; `
    + `accepted by kind: ${accepted.filter((a) => a.kind === 'file').length} files, ${accepted.filter((a) => a.kind === 'set').length} --set`);
  assert.ok(rejected.length > tried / 4 && accepted.length > tried / 20, 'the cases reach both sides of the validator');
});

test('rejected cases exit 2 through the real CLI, before any run dir exists', async () => {
  const r = new SeededRandom(SEED + 2);
  const sample = Array.from({ length: Math.min(CLI_SAMPLE, rejected.length) }, () => r.pick(rejected));
  for (const c of sample) {
    const res = await runCli(c.argv, { cwd: work, env: { TMPDIR: runTmp }, timeoutMs: 60_000 });
    const what = `switchover ${c.argv.join(' ').slice(0, 300)}`;
    assert.not.ok(res.timedOut, `${what}: hung`);
    assert.is(res.code, 2, `${what}: exit ${res.code}\n${res.stderr}`);
    assert.is(res.stderr, `switchover: ${c.message}\n`, what);
    assert.equal(readdirSync(runTmp), [], `${what}: a run dir was created before the input was refused`);
  }
  console.log(`  fuzz: ${sample.length} rejected cases re-run through the CLI: all exit 2, nothing built`);
});

test('accepted cases, run for real with short durations, end in a verdict and never pass on no traffic', async () => {
  if (!RUNS || !requirePrivilege('the fuzz runs')) return;
  const r = new SeededRandom(SEED + 3);
  const SHORT = ['duration=400', 'migrate-after=100', 'hops=1', 'mem=64', 'dirty-rate=2000'];
  const verdicts: string[] = [];
  for (let tries = 0; verdicts.length < RUNS && tries < 50; tries++) {
    const c = r.pick(accepted);
    // The short run must itself be valid for this case (the case may forbid one of them).
    try {
      applyOverrides(c.scenario, SHORT);
    } catch {
      continue;
    }
    const json = join(work, `run-${verdicts.length}.json`);
    const argv = [...c.argv, ...SHORT.flatMap((v) => ['--set', v]), '--json', json];
    let runId: string | undefined;
    const res = await runCli(argv, {
      cwd: work, env: { TMPDIR: runTmp }, timeoutMs: 180_000,
      onStderrLine: (line) => { runId ??= /topology up \(run ([0-9a-f]{6})/.exec(line)?.[1]; },
    });
    const what = `switchover ${argv.join(' ').slice(0, 400)}`;
    assert.ok(res.code === 0 || res.code === 1 || res.code === 2, `${what}: exit ${res.code} ${res.signal ?? ''}\n${res.stderr}`);
    assert.not.match(res.stderr, /TypeError|RangeError|    at /, `${what}: crashed\n${res.stderr}`);
    const report = JSON.parse(readFileSync(json, 'utf8')) as JsonReport;
    for (const result of report.results) {
      verdicts.push(result.verdict);
      if (result.verdict === 'pass') assert.ok(result.traffic.some((f) => f.sent > 0), `${what}: passed with no analyzed flow`);
    }
    if (runId) assert.equal(await leftovers(runNames(runId), join(runTmp, `switchover-${runId}`)), [], `${what}: left things behind`);
  }
  console.log(`  fuzz: ${verdicts.length} accepted cases run for real: ${verdicts.join(', ')}`);
  assert.is(verdicts.length, RUNS, 'enough accepted cases could run short');
});

test.after(() => rmSync(work, { recursive: true, force: true }));
test.run();
