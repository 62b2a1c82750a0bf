// Baselines: `switchover baseline save` keeps a run's key figures per scenario and backend;
// `--baseline FILE` compares a new run against them and fails on a regression beyond the
// tolerances below. Several results of one scenario (`--repeat`) are summarised by their
// median, so one noisy run neither sets nor breaks a baseline.
//
// Default tolerances (DEFAULT_TOLERANCE), each against the baseline value B:
//   lost packets   more than B + 0
//   outage         longer than B + max(20% of B, 5 ms)
//   downtime       longer than B + max(20% of B, 10 ms)
//   throughput     migration bytes/s below B - 20%
//   verdict        pass in the baseline, anything else now
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InputError, describeGot, isPlainObject } from '../scenario/schema.js';
import type { BackendName, ScenarioResult, Verdict } from '../scenario/types.js';
import { median } from '../../lib/stats.js';

export interface BaselineEntry {
  scenario: string;
  backend: BackendName;
  verdict: Verdict;
  runs: number;
  /** Lost packets, all flows. */
  lost: number;
  /** The worst flow's outage. */
  outageMs: number;
  downtimeMs: number;
  /** Migration stream rate: transferred bytes / total time, MB/s (10^6). 0 when unknown. */
  throughputMBps: number;
}

export interface Baseline { format: 'switchover-baseline'; version: 1; savedAt: string; entries: BaselineEntry[] }

export interface Tolerance {
  lost: number;
  outagePct: number; outageMs: number;
  downtimePct: number; downtimeMs: number;
  throughputPct: number;
}
export const DEFAULT_TOLERANCE: Readonly<Tolerance> = {
  lost: 0, outagePct: 20, outageMs: 5, downtimePct: 20, downtimeMs: 10, throughputPct: 20,
};

export interface BaselineComparison {
  /** One readable line per regression; empty means the run holds the baseline. */
  regressions: string[];
  /** Results that had a baseline entry. */
  compared: number;
  /** `scenario [backend]` of results with no baseline entry (new scenarios: not a regression). */
  missing: string[];
}

const key = (scenario: string, backend: string) => `${scenario} [${backend}]`;

/** One entry per scenario and backend; repeated results summarised by their median. */
export function summarize(results: readonly ScenarioResult[]): BaselineEntry[] {
  const groups = new Map<string, ScenarioResult[]>();
  for (const r of results) groups.set(key(r.scenario, r.backend), [...(groups.get(key(r.scenario, r.backend)) ?? []), r]);
  return [...groups.values()].map((runs) => {
    const first = runs[0]!;
    const verdicts = runs.map((r) => r.verdict);
    return {
      scenario: first.scenario,
      backend: first.backend,
      // The worst verdict of the runs: a baseline that passed once in three is not a pass.
      verdict: (['error', 'fail', 'unsupported', 'pass'] as const).find((v) => verdicts.includes(v))!,
      runs: runs.length,
      lost: median(runs.map((r) => r.traffic.reduce((n, f) => n + f.lost, 0))),
      outageMs: median(runs.map((r) => Math.max(0, ...r.traffic.map((f) => f.outageMs)))),
      downtimeMs: median(runs.map((r) => r.migration.downtimeMs)),
      throughputMBps: median(runs.map((r) => (r.migration.totalTimeMs > 0 ? r.migration.transferredBytes / r.migration.totalTimeMs / 1000 : 0))),
    };
  });
}

export function toBaseline(results: readonly ScenarioResult[], now = new Date()): Baseline {
  return { format: 'switchover-baseline', version: 1, savedAt: now.toISOString(), entries: summarize(results) };
}

/**
 * `switchover baseline save`: writes the baseline atomically (a reader never sees half a file).
 * The temp file is created O_CREAT|O_EXCL in a fresh private directory beside the target, so no
 * name can be guessed and no planted symlink is followed (issue 18); the rename then replaces
 * the target itself, a symlink there included, never what it points to. The target's directory
 * must exist: `switchover` checks it before the run.
 */
export async function saveBaseline(results: readonly ScenarioResult[], file: string): Promise<Baseline> {
  const baseline = toBaseline(results);
  const dir = await mkdtemp(join(dirname(file), '.switchover-baseline-'));
  try {
    const tmp = join(dir, 'baseline.json');
    await writeFile(tmp, `${JSON.stringify(baseline, null, 2)}\n`, { flag: 'wx' });
    await rename(tmp, file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return baseline;
}

/** Reads a saved baseline, or a run's `--json` output (a list of results, or `{results: [...]}`). */
export async function loadBaseline(file: string): Promise<Baseline> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new InputError(file, '', e.code ? `cannot read the baseline: ${e.code}; save one with \`switchover baseline save ${file}\``
      : `not valid JSON: ${e.message}`, { cause: err });
  }
  const results = Array.isArray(parsed) ? parsed : isPlainObject(parsed) && Array.isArray(parsed.results) ? parsed.results : undefined;
  if (results) {
    results.forEach((r: unknown, i) => {
      if (!isPlainObject(r) || typeof r.scenario !== 'string' || !Array.isArray(r.traffic) || !isPlainObject(r.migration)) {
        throw new InputError(file, `[${i}]`, `expected a scenario result from \`switchover run --json\`, got ${describeGot(r)}`);
      }
    });
    return toBaseline(results as ScenarioResult[]);
  }
  if (!isPlainObject(parsed) || parsed.format !== 'switchover-baseline' || !Array.isArray(parsed.entries)) {
    throw new InputError(file, '', 'expected a file written by `switchover baseline save` or `switchover run --json`');
  }
  parsed.entries.forEach((e: unknown, i) => {
    const ok = isPlainObject(e) && typeof e.scenario === 'string' && typeof e.backend === 'string'
      && ['lost', 'outageMs', 'downtimeMs', 'throughputMBps'].every((f) => typeof e[f] === 'number' && Number.isFinite(e[f]));
    if (!ok) throw new InputError(file, `entries[${i}]`, `expected {scenario, backend, verdict, lost, outageMs, downtimeMs, throughputMBps}, got ${describeGot(e)}`);
  });
  return parsed as unknown as Baseline;
}

const ms = (v: number) => `${v.toFixed(1)} ms`;

/** Regressions of `results` against `baseline`; each a line naming scenario, figure, now and then. */
export function compareToBaseline(results: readonly ScenarioResult[], baseline: Baseline, tolerance: Tolerance = DEFAULT_TOLERANCE): BaselineComparison {
  const before = new Map(baseline.entries.map((e) => [key(e.scenario, e.backend), e]));
  const out: BaselineComparison = { regressions: [], compared: 0, missing: [] };
  for (const now of summarize(results)) {
    const name = key(now.scenario, now.backend);
    const base = before.get(name);
    if (!base) { out.missing.push(name); continue; }
    out.compared++;
    const regress = (line: string) => out.regressions.push(`${name}: ${line}`);
    if (base.verdict === 'pass' && now.verdict !== 'pass') regress(`verdict ${now.verdict}, baseline pass`);
    // Figures are only meaningful when both runs got as far as measuring.
    const measured = (v: Verdict) => v === 'pass' || v === 'fail';
    if (!measured(now.verdict) || !measured(base.verdict)) continue;
    if (now.lost > base.lost + tolerance.lost) {
      regress(`lost ${now.lost}, baseline ${base.lost} (allowed +${tolerance.lost})`);
    }
    const outageLimit = base.outageMs + Math.max(base.outageMs * tolerance.outagePct / 100, tolerance.outageMs);
    if (now.outageMs > outageLimit) {
      regress(`outage ${ms(now.outageMs)}, baseline ${ms(base.outageMs)} (allowed up to ${ms(outageLimit)}: +${tolerance.outagePct}% or +${tolerance.outageMs} ms)`);
    }
    const downtimeLimit = base.downtimeMs + Math.max(base.downtimeMs * tolerance.downtimePct / 100, tolerance.downtimeMs);
    if (now.downtimeMs > downtimeLimit) {
      regress(`downtime ${ms(now.downtimeMs)}, baseline ${ms(base.downtimeMs)} (allowed up to ${ms(downtimeLimit)}: +${tolerance.downtimePct}% or +${tolerance.downtimeMs} ms)`);
    }
    const throughputFloor = base.throughputMBps * (1 - tolerance.throughputPct / 100);
    if (base.throughputMBps > 0 && now.throughputMBps < throughputFloor) {
      regress(`throughput ${now.throughputMBps.toFixed(1)} MB/s, baseline ${base.throughputMBps.toFixed(1)} MB/s (allowed down to ${throughputFloor.toFixed(1)} MB/s: -${tolerance.throughputPct}%)`);
    }
  }
  return out;
}

/** The comparison as terminal text: a verdict line, then one line per regression. */
export function formatComparison(c: BaselineComparison): string {
  const head = c.regressions.length
    ? `baseline: ${c.regressions.length} regression${c.regressions.length === 1 ? '' : 's'} in ${c.compared} compared`
    : `baseline: no regression in ${c.compared} compared`;
  const missing = c.missing.length ? [`not in the baseline (not compared): ${c.missing.join(', ')}`] : [];
  return [head, ...c.regressions.map((r) => `  ${r}`), ...missing].join('\n') + '\n';
}

/**
 * `--tolerance` text: comma-separated `loss=N`, `outage=N%`, `outage=Nms`, `downtime=N%`,
 * `downtime=Nms`, `throughput=N%`; unnamed figures keep their defaults.
 */
export function parseTolerance(spec: string, base: Readonly<Tolerance> = DEFAULT_TOLERANCE): Tolerance {
  const t: Tolerance = { ...base };
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(loss|outage|downtime|throughput)=(\d+(?:\.\d+)?)(%|ms)?$/.exec(part);
    const where = `--tolerance ${spec}`;
    if (!m) throw new InputError(where, '', `expected loss=N, outage=N% or Nms, downtime=N% or Nms, throughput=N%, got ${describeGot(part)}`);
    const [, what, num, unit] = m;
    const v = Number(num);
    if (what === 'loss' && !unit && Number.isInteger(v)) t.lost = v;
    else if (what === 'outage' && unit) t[unit === '%' ? 'outagePct' : 'outageMs'] = v;
    else if (what === 'downtime' && unit) t[unit === '%' ? 'downtimePct' : 'downtimeMs'] = v;
    else if (what === 'throughput' && unit === '%' && v < 100) t.throughputPct = v;
    else throw new InputError(where, '', `expected ${what === 'loss' ? 'a whole number of packets' : what === 'throughput' ? 'a percentage below 100' : 'a value with % or ms'} for ${what}, got ${describeGot(part)}`);
  }
  return t;
}
