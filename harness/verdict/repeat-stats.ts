// `--repeat N`: flakiness statistics over several results of the same scenario: pass rate,
// outage percentiles and a text histogram of the largest gap between consecutive replies
// (one value per run and flow), so "fails 1 run in 20" and "usually 2 ms, sometimes 200 ms"
// become visible.
import type { BackendName, ScenarioResult, Verdict } from '../scenario/types.js';
import { percentile } from '../../lib/stats.js';

export interface GapBucket { fromMs: number; toMs: number; count: number }

export interface RepeatStats {
  scenario: string;
  backend: BackendName;
  runs: number;
  passed: number;
  /** passed / runs, 0..1. Unsupported runs count as passed (they are allowed), as in the exit code. */
  passRate: number;
  verdicts: Record<Verdict, number>;
  /** Per run, the worst flow's outage. */
  outageMs: { p50: number; p95: number; max: number };
  lost: { total: number; runsWithLoss: number; max: number };
  /** Largest gap between consecutive replies, one value per run and flow; buckets with 0 are kept between non-empty ones. */
  gaps: GapBucket[];
}

/** Bucket edges in ms: roughly 1-2-5 steps, as latency histograms usually are. */
export const GAP_EDGES_MS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

export function gapHistogram(gapsMs: readonly number[]): GapBucket[] {
  const buckets = GAP_EDGES_MS.map((from, i) => ({ fromMs: from, toMs: GAP_EDGES_MS[i + 1] ?? Infinity, count: 0 }));
  for (const g of gapsMs) buckets.find((b) => g >= b.fromMs && g < b.toMs)!.count++;
  const first = buckets.findIndex((b) => b.count > 0);
  const last = buckets.length - 1 - [...buckets].reverse().findIndex((b) => b.count > 0);
  return first < 0 ? [] : buckets.slice(first, last + 1);
}

/** Statistics over results of one scenario on one backend. */
export function repeatStats(results: readonly ScenarioResult[]): RepeatStats {
  const first = results[0];
  if (!first) throw new Error('repeatStats needs at least one result');
  const other = results.find((r) => r.scenario !== first.scenario || r.backend !== first.backend);
  if (other) {
    throw new Error(`repeatStats mixes ${first.scenario} [${first.backend}] with ${other.scenario} [${other.backend}]: group results with repeatStatsByScenario`);
  }
  const verdicts: Record<Verdict, number> = { pass: 0, fail: 0, unsupported: 0, error: 0 };
  for (const r of results) verdicts[r.verdict]++;
  const passed = verdicts.pass + verdicts.unsupported;
  const outages = results.map((r) => Math.max(0, ...r.traffic.map((f) => f.outageMs)));
  const losses = results.map((r) => r.traffic.reduce((n, f) => n + f.lost, 0));
  return {
    scenario: first.scenario,
    backend: first.backend,
    runs: results.length,
    passed,
    passRate: passed / results.length,
    verdicts,
    outageMs: { p50: percentile(outages, 50), p95: percentile(outages, 95), max: Math.max(...outages) },
    lost: { total: losses.reduce((a, b) => a + b, 0), runsWithLoss: losses.filter((l) => l > 0).length, max: Math.max(...losses) },
    gaps: gapHistogram(results.flatMap((r) => r.traffic.map((f) => f.maxGapMs))),
  };
}

/** Groups results by scenario and backend (in first-seen order) and computes each group's statistics. */
export function repeatStatsByScenario(results: readonly ScenarioResult[]): RepeatStats[] {
  const groups = new Map<string, ScenarioResult[]>();
  for (const r of results) {
    const k = `${r.scenario}\0${r.backend}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map(repeatStats);
}

const BAR_WIDTH = 30;
const fmtMs = (v: number) => `${Number(v.toFixed(1))} ms`;

/** Terminal text for one scenario's statistics. */
export function formatRepeatStats(s: RepeatStats): string {
  const others = (['fail', 'error', 'unsupported'] as const).filter((v) => s.verdicts[v] > 0).map((v) => `${s.verdicts[v]} ${v}`);
  const lines = [
    `${s.scenario} [${s.backend}]: ${s.runs} runs, ${s.passed} passed (${Math.round(s.passRate * 100)}%)${others.length ? `, ${others.join(', ')}` : ''}`,
    `  outage p50 ${fmtMs(s.outageMs.p50)}, p95 ${fmtMs(s.outageMs.p95)}, max ${fmtMs(s.outageMs.max)}; `
      + `lost ${s.lost.total} in ${s.lost.runsWithLoss} run${s.lost.runsWithLoss === 1 ? '' : 's'} (max ${s.lost.max} in one)`,
  ];
  if (s.gaps.length) {
    lines.push('  largest gap between replies (per run and flow):');
    const most = Math.max(...s.gaps.map((b) => b.count));
    const labels = s.gaps.map((b) => (b.toMs === Infinity ? `>= ${b.fromMs} ms` : `${b.fromMs}-${b.toMs} ms`));
    const width = Math.max(...labels.map((l) => l.length));
    s.gaps.forEach((b, i) => {
      const bar = '#'.repeat(b.count ? Math.max(1, Math.round((b.count / most) * BAR_WIDTH)) : 0);
      lines.push(`    ${labels[i]!.padStart(width)} | ${bar}${bar ? ' ' : ''}${b.count}`);
    });
  }
  return `${lines.join('\n')}\n`;
}
