// The `--json` file: { summary, results }, where results holds one ScenarioResult per
// scenario (the DESIGN.md contract: scenario, backend, verdict, migration.*, traffic[].*,
// netpass.*), and summary the verdict counts and the exit code the run ends with.
// Without the per-packet lists (packets: false, as `switchover run` writes it) each flow keeps
// its timeline marks instead (traffic[].marks, marks.ts): every lost, delayed and reordered
// packet and runs of the healthy ones, which is what the compare view draws.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { flowMarks } from './marks.js';
import { summarize, type RunSummary } from './table.js';
import { describeGot, InputError, isPlainObject } from '../scenario/schema.js';
import type { ScenarioResult } from '../scenario/types.js';

export interface JsonReport {
  /** Bumped when a field changes meaning; additions keep the version. */
  format: 'switchover-results/1';
  generatedAt: string;
  summary: RunSummary & { exitCode: 0 | 1 | 2 };
  results: ScenarioResult[];
}

/** DESIGN.md exit codes: 2 on any error, else 1 on any failed expectation, else 0. */
export function exitCodeFor(results: ScenarioResult[]): 0 | 1 | 2 {
  if (results.some((r) => r.verdict === 'error')) return 2;
  if (results.some((r) => r.verdict === 'fail')) return 1;
  return 0;
}

export function buildJsonReport(results: ScenarioResult[], opts: { packets?: boolean; now?: Date } = {}): JsonReport {
  const keepPackets = opts.packets ?? true;
  return {
    format: 'switchover-results/1',
    generatedAt: (opts.now ?? new Date()).toISOString(),
    summary: { ...summarize(results), exitCode: exitCodeFor(results) },
    results: keepPackets ? results : results.map((r) => ({
      ...r, traffic: r.traffic.map((flow) => {
        const { packets: _packets, ...f } = flow;
        const marks = flowMarks(flow);
        return marks ? { ...f, marks } : f;
      }),
    })),
  };
}

/** The report indented as JSON.stringify(report, null, 2) does, but each timeline mark on
 * one line: a netpass flow can delay thousands of packets, and seven lines each would make
 * most of the file. */
function stringifyJsonReport(report: JsonReport): string {
  const marks: string[] = [];
  const text = JSON.stringify(report, (key, value: unknown) => {
    if (key !== 'marks' || !Array.isArray(value)) return value;
    marks.push(value.map((m) => JSON.stringify(m)).join(',\n'));
    return `\u0000marks:${marks.length - 1}`;
  }, 2);
  return text.replace(/^( *)"marks": "\\u0000marks:(\d+)"/gm, (_, indent: string, i: string) => {
    const items = marks[Number(i)]!;
    return items ? `${indent}"marks": [\n${indent}  ${items.replace(/\n/g, `\n${indent}  `)}\n${indent}]` : `${indent}"marks": []`;
  });
}

/** Write the report, creating the directory; per-packet lists are kept unless packets=false (then the marks). */
export function writeJsonReport(file: string, results: ScenarioResult[], opts: { packets?: boolean } = {}): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${stringifyJsonReport(buildJsonReport(results, opts))}\n`);
}

const WRITTEN_BY = 'give a file written by `switchover run --json FILE`';

/** Reads a `--json` results file, checking the fields a reader of results relies on. */
export function readJsonReport(file: string): JsonReport {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(file, '', code === 'ENOENT' ? `no such file: ${WRITTEN_BY}` : `cannot read (${code ?? (e as Error).message})`, { cause: e });
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, '', `not JSON (${(e as Error).message}): ${WRITTEN_BY}`, { cause: e });
  }
  if (!isPlainObject(j) || typeof j.format !== 'string' || !j.format.startsWith('switchover-results/')) {
    throw new InputError(file, 'format', `expected "switchover-results/1", got ${describeGot(isPlainObject(j) ? j.format : j)}: ${WRITTEN_BY}`);
  }
  if (j.format !== 'switchover-results/1') {
    throw new InputError(file, 'format', `${describeGot(j.format)} is a newer results format than this switchover reads (switchover-results/1): update switchover`);
  }
  if (!Array.isArray(j.results)) throw new InputError(file, 'results', `expected an array of results, got ${describeGot(j.results)}`);
  j.results.forEach((r: unknown, i) => {
    const at = `results[${i}]`;
    if (!isPlainObject(r)) throw new InputError(file, at, `expected a result object, got ${describeGot(r)}`);
    for (const k of ['scenario', 'backend', 'verdict'] as const) {
      if (typeof r[k] !== 'string') throw new InputError(file, `${at}.${k}`, `expected a string, got ${describeGot(r[k])}`);
    }
    if (!isPlainObject(r.migration) || typeof r.migration.downtimeMs !== 'number') {
      throw new InputError(file, `${at}.migration.downtimeMs`, `expected a number, got ${describeGot(isPlainObject(r.migration) ? r.migration.downtimeMs : r.migration)}`);
    }
    for (const k of ['traffic', 'timeline', 'announces', 'fdbMoves'] as const) {
      if (!Array.isArray(r[k])) throw new InputError(file, `${at}.${k}`, `expected an array, got ${describeGot(r[k])}`);
    }
    (r.traffic as unknown[]).forEach((f, k) => {
      for (const n of ['lost', 'outageMs', 'maxAddedLatencyMs'] as const) {
        const v = isPlainObject(f) ? f[n] : f;
        if (typeof v !== 'number') throw new InputError(file, `${at}.traffic[${k}].${n}`, `expected a number, got ${describeGot(v)}`);
      }
    });
  });
  return j as unknown as JsonReport;
}
