// Reading a trace folder (trace.ts) back: its manifest, the scenario as it ran and the result,
// and re-judging it offline, with the run's parameters, through the runner's own code
// (judge.ts), so the same files give the same verdict and figures.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadScenarioFile } from '../scenario/catalogue.js';
import { effectiveExpectations } from '../scenario/scenario.js';
import { InputError, describeGot, isPlainObject } from '../scenario/schema.js';
import { readJsonReport } from '../report/json.js';
import { analyzeRunCaptures, judge, judgeTeardown } from './judge.js';
import { TRACE_FORMAT, type TraceManifest } from './trace.js';
import type { Scenario, ScenarioResult } from '../scenario/types.js';

export interface Trace {
  dir: string;
  manifest: TraceManifest;
  /** The scenario as it ran. */
  scenario: Scenario;
  /** The result the run gave. */
  result: ScenarioResult;
}

/** Whether `path` is a trace folder: a directory with scenario.json and result.json. */
export function isTraceDir(path: string): boolean {
  try {
    return statSync(path).isDirectory() && existsSync(join(path, 'scenario.json')) && existsSync(join(path, 'result.json'));
  } catch {
    return false;
  }
}

const MADE_BY = 'give a folder written by `switchover run --trace DIR` (DIR/SCENARIO)';

export async function readTrace(dir: string): Promise<Trace> {
  if (!isTraceDir(dir)) throw new InputError(dir, '', `not a trace folder (no scenario.json and result.json): ${MADE_BY}`);
  const manifestFile = join(dir, 'trace.json');
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  } catch (e) {
    throw new InputError(manifestFile, '', `cannot read the trace's manifest (${(e as Error).message}): ${MADE_BY}`, { cause: e });
  }
  if (!isPlainObject(manifest) || manifest.format !== TRACE_FORMAT) {
    throw new InputError(manifestFile, 'format', `expected ${JSON.stringify(TRACE_FORMAT)}, got ${describeGot(isPlainObject(manifest) ? manifest.format : manifest)}: ${MADE_BY}`);
  }
  const report = readJsonReport(join(dir, 'result.json'));
  const result = report.results[0];
  if (report.results.length !== 1 || !result) throw new InputError(join(dir, 'result.json'), 'results', `expected the one result of the traced run, got ${report.results.length}`);
  const scenario = await loadScenarioFile(join(dir, 'scenario.json'));
  return { dir, manifest: manifest as unknown as TraceManifest, scenario, result };
}

/**
 * The run judged again from the trace's captures: the analysis and the verdict as the runner
 * made them, with the recorded parameters and the run's checks that are not in the captures
 * (the destination ran, the guest survived, faults fired, ping's own view, teardown).
 */
export async function rejudgeTrace(t: Trace): Promise<ScenarioResult> {
  const { manifest: m, dir } = t;
  if (!m.analysis || !m.judging || !t.result.health) {
    throw new InputError(dir, '', `the run ended before its captures were analysed (${t.result.verdict}: ${t.result.reason ?? 'no reason recorded'}), so there is nothing to re-judge; \`switchover replay ${dir}\` runs it again`);
  }
  const inTrace = (f: { iface: string; file: string }): { iface: string; file: string } => {
    const file = join(dir, f.file);
    if (!existsSync(file)) throw new InputError(dir, '', `the capture ${f.file} of ${f.iface} is missing from the trace: re-judging needs every capture the run analysed`);
    return { iface: f.iface, file };
  };
  const analysis = { ...m.analysis, client: inTrace(m.analysis.client), taps: m.analysis.taps.map(inTrace) };
  const r: ScenarioResult = structuredClone(t.result);
  Object.assign(r, await analyzeRunCaptures(analysis, t.result.health));
  judge(r, { expectations: effectiveExpectations(t.scenario, r.backend), flows: t.scenario.traffic.flows, ...m.judging });
  judgeTeardown(r, m.teardownErrors);
  return r;
}

/** The parts of a result that re-judging recomputes: what must come out the same. */
export function judgedParts(r: ScenarioResult): Pick<ScenarioResult, 'verdict' | 'reason' | 'expectations' | 'traffic' | 'announces' | 'macFlapping'> {
  return JSON.parse(JSON.stringify({
    verdict: r.verdict, reason: r.reason, expectations: r.expectations, traffic: r.traffic, announces: r.announces, macFlapping: r.macFlapping,
  })) as ReturnType<typeof judgedParts>;
}
