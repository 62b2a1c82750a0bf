// The compare view of two result files (`switchover report compare A.json B.json`): the same
// scenarios lined up, with lost, outage, delay and downtime as A, B and B−A, as a terminal
// table and as HTML where each pair's two timelines sit one above the other on one time axis.
//
// Pairing: a scenario of A pairs with the one of B with the same name and backend. A rule
// FROM:TO (`--pair`) first replaces the name prefix FROM with TO, so `baseline-:netpass-` lines
// up A's baseline-bridge-udp with B's netpass-bridge-udp; given rules, only A's scenarios that
// match one are paired. Repeats of a scenario (`--repeat N`) count by their medians, and its
// timeline is the median run's (ordered by lost, then outage).
import { median } from '../../lib/stats.js';
import { InputError } from '../scenario/schema.js';
import type { BackendName, ScenarioResult } from '../scenario/types.js';
import { esc, htmlPage, LEGEND, timeRange, timelineSvg } from './html.js';
import { fmtMs, renderTable } from './table.js';

export interface PairRule { from: string; to: string }

/** `FROM:TO`, e.g. `baseline-:netpass-`. */
export function parsePairRule(spec: string): PairRule {
  const at = spec.indexOf(':');
  if (at <= 0 || at === spec.length - 1 || spec.indexOf(':', at + 1) >= 0) {
    throw new InputError(`--pair ${spec}`, '', 'expected FROM:TO, two scenario name prefixes, e.g. --pair baseline-:netpass-');
  }
  return { from: spec.slice(0, at), to: spec.slice(at + 1) };
}

/** The figures compared; null where a result has none (no traffic, no migration). */
export interface Figures { lost: number | null; outageMs: number | null; delayMs: number | null; downtimeMs: number | null }
export const FIGURES: ReadonlyArray<{ key: keyof Figures; label: string; ms: boolean }> = [
  { key: 'lost', label: 'lost', ms: false },
  { key: 'outageMs', label: 'outage', ms: true },
  { key: 'delayMs', label: 'delay', ms: true },
  { key: 'downtimeMs', label: 'downtime', ms: true },
];

/** Lost over all flows, the worst flow's outage and largest added latency, the migration's downtime. */
export function figuresOf(r: ScenarioResult): Figures {
  const flows = r.traffic.length > 0;
  return {
    lost: flows ? r.traffic.reduce((n, f) => n + f.lost, 0) : null,
    outageMs: flows ? Math.max(...r.traffic.map((f) => f.outageMs)) : null,
    delayMs: flows ? Math.max(...r.traffic.map((f) => f.maxAddedLatencyMs)) : null,
    downtimeMs: r.migration.status === 'none' ? null : r.migration.downtimeMs,
  };
}

/** One side of a pair: the runs of one scenario in one file. */
export interface Side {
  scenario: string;
  runs: ScenarioResult[];
  /** Medians over the runs. */
  figures: Figures;
  /** The run whose timeline is drawn: the median one by lost, then outage. */
  shown: ScenarioResult;
  shownIndex: number;
}

export interface Pair { backend: BackendName; a: Side; b: Side }

export interface Comparison {
  pairs: Pair[];
  /** `scenario [backend]` of each file that found no partner; with rules, only those a rule
   * named (A's matching a FROM, B's matching a TO): the others are left out by design. */
  unpairedA: string[];
  unpairedB: string[];
  /** How many scenarios of each file no rule named. */
  outsideRules: { a: number; b: number };
}

const keyOf = (scenario: string, backend: string): string => `${scenario} [${backend}]`;

function groups(results: readonly ScenarioResult[]): Map<string, ScenarioResult[]> {
  const out = new Map<string, ScenarioResult[]>();
  for (const r of results) {
    const k = keyOf(r.scenario, r.backend);
    out.set(k, [...(out.get(k) ?? []), r]);
  }
  return out;
}

function side(runs: ScenarioResult[]): Side {
  const all = runs.map(figuresOf);
  const med = (k: keyof Figures): number | null => {
    const v = all.map((f) => f[k]).filter((x): x is number => x !== null);
    return v.length ? median(v) : null;
  };
  const order = runs.map((_, i) => i).sort((i, j) => (all[i]!.lost ?? 0) - (all[j]!.lost ?? 0) || (all[i]!.outageMs ?? 0) - (all[j]!.outageMs ?? 0));
  const shownIndex = order[(order.length - 1) >> 1]!;
  return {
    scenario: runs[0]!.scenario, runs, shownIndex, shown: runs[shownIndex]!,
    figures: { lost: med('lost'), outageMs: med('outageMs'), delayMs: med('delayMs'), downtimeMs: med('downtimeMs') },
  };
}

/** Lines up the scenarios of A with those of B (see the file header for the rules). */
export function compareResults(a: readonly ScenarioResult[], b: readonly ScenarioResult[], rules: readonly PairRule[] = []): Comparison {
  const ga = groups(a);
  const gb = groups(b);
  const pairs: Pair[] = [];
  const unpairedA: string[] = [];
  const used = new Set<string>();
  const outsideRules = { a: 0, b: 0 };
  for (const [k, runsA] of ga) {
    const { scenario, backend } = runsA[0]!;
    const rule = rules.find((r) => scenario.startsWith(r.from));
    if (rules.length && !rule) { outsideRules.a++; continue; }
    const partner = rule ? `${rule.to}${scenario.slice(rule.from.length)}` : scenario;
    const runsB = gb.get(keyOf(partner, backend));
    if (!runsB) { unpairedA.push(k); continue; }
    used.add(keyOf(partner, backend));
    pairs.push({ backend, a: side(runsA), b: side(runsB) });
  }
  const unpairedB: string[] = [];
  for (const [k, [r]] of gb) {
    if (used.has(k)) continue;
    if (rules.length && !rules.some((x) => r!.scenario.startsWith(x.to))) outsideRules.b++;
    else unpairedB.push(k);
  }
  return { pairs, unpairedA, unpairedB, outsideRules };
}

const delta = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : b - a);
const fmtValue = (v: number | null, ms: boolean): string => (v === null ? '-' : ms ? fmtMs(v) : `${Number(v.toFixed(1))}`);
function fmtDelta(d: number | null, ms: boolean): string {
  if (d === null) return '-';
  if (d === 0) return '0';
  return `${d > 0 ? '+' : '-'}${fmtValue(Math.abs(d), ms)}`;
}
const verdicts = (s: Side): string => {
  const counts = new Map<string, number>();
  for (const r of s.runs) counts.set(r.verdict, (counts.get(r.verdict) ?? 0) + 1);
  return s.runs.length === 1 ? s.runs[0]!.verdict : [...counts].map(([v, n]) => `${n} ${v}`).join(', ');
};
const pairName = (p: Pair): string => (p.a.scenario === p.b.scenario ? p.a.scenario : `${p.a.scenario} → ${p.b.scenario}`);
const repeated = (c: Comparison): boolean => c.pairs.some((p) => p.a.runs.length > 1 || p.b.runs.length > 1);

export interface CompareLabels { a: string; b: string }

function unpairedLines(c: Comparison, labels: CompareLabels): string[] {
  const lines: string[] = [];
  if (c.unpairedA.length) lines.push(`no partner in B for A's ${c.unpairedA.join(', ')}`);
  if (c.unpairedB.length) lines.push(`no partner in A for B's ${c.unpairedB.join(', ')}`);
  const { a, b } = c.outsideRules;
  if (a || b) lines.push(`not named by --pair: ${a} scenario(s) of A (${labels.a}), ${b} of B (${labels.b})`);
  return lines;
}

/** The terminal table: one row per pair, A, B and B−A for each figure, then what found no partner. */
export function renderCompareTable(c: Comparison, labels: CompareLabels): string {
  const reps = repeated(c);
  const headers = ['scenario', 'backend', ...(reps ? ['runs A/B'] : []), 'verdict A', 'verdict B',
    ...FIGURES.flatMap((f) => [`${f.label} A`, `${f.label} B`, 'B−A'])];
  const rows = c.pairs.map((p) => [
    pairName(p), p.backend, ...(reps ? [`${p.a.runs.length}/${p.b.runs.length}`] : []), verdicts(p.a), verdicts(p.b),
    ...FIGURES.flatMap((f) => [
      fmtValue(p.a.figures[f.key], f.ms), fmtValue(p.b.figures[f.key], f.ms), fmtDelta(delta(p.a.figures[f.key], p.b.figures[f.key]), f.ms),
    ]),
  ]);
  const left = new Set([0, 1, reps ? 3 : 2, reps ? 4 : 3]);
  return [
    `A = ${labels.a}`, `B = ${labels.b}`, '',
    renderTable(headers, rows, left), '',
    `outage, delay (the largest added latency of any flow) and downtime in ms${reps ? '; repeated scenarios by their medians' : ''}`,
    ...unpairedLines(c, labels),
  ].join('\n') + '\n';
}

function figuresTable(p: Pair, i: number): string {
  const rows = FIGURES.map((f) => {
    const a = p.a.figures[f.key];
    const b = p.b.figures[f.key];
    const d = delta(a, b);
    const cls = d === null || d === 0 ? '' : d > 0 ? 'worse' : 'better';
    return `<tr data-figure="${f.key}"><th>${esc(f.label)}${f.ms ? ' ms' : ''}</th><td data-side="a">${esc(fmtValue(a, f.ms))}</td><td data-side="b">${esc(fmtValue(b, f.ms))}</td><td data-side="delta" class="${cls}">${esc(fmtDelta(d, f.ms))}</td></tr>`;
  });
  return `<table class="compare" data-pair="${i}"><thead><tr><th></th><th>A</th><th>B</th><th>B−A</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function sideFigure(s: Side, which: 'a' | 'b', file: string, id: string, range: ReturnType<typeof timeRange>): string {
  const r = s.shown;
  const run = s.runs.length > 1 ? `, run ${s.shownIndex + 1} of ${s.runs.length} (the median)` : '';
  return `<figure data-side="${which}"><figcaption><b>${which.toUpperCase()}</b> ${esc(r.scenario)} <span class="badge ${esc(r.verdict)}">${esc(r.verdict.toUpperCase())}</span> <small>${esc(file)}${esc(run)}, started ${esc(r.startedAt)}</small>${r.reason ? ` <span class="reason-inline">${esc(r.reason)}</span>` : ''}</figcaption>${timelineSvg(r, id, range)}</figure>`;
}

/** The HTML page: the overview table, then per pair its figures and the A and B timelines over one time axis. */
export function renderCompareHtml(c: Comparison, labels: CompareLabels, opts: { now?: Date } = {}): string {
  const title = 'switchover compare';
  const overview = c.pairs.map((p, i) => `<tr data-pair="${i}"><td><a href="#pair-${i}">${esc(pairName(p))}</a></td><td>${esc(p.backend)}</td><td>${esc(verdicts(p.a))}</td><td>${esc(verdicts(p.b))}</td>${FIGURES.map((f) => {
    const d = delta(p.a.figures[f.key], p.b.figures[f.key]);
    return `<td data-figure="${f.key}" class="${d === null || d === 0 ? '' : d > 0 ? 'worse' : 'better'}">${esc(fmtDelta(d, f.ms))}</td>`;
  }).join('')}</tr>`).join('');
  const sections = c.pairs.map((p, i) => {
    const ra = timeRange(p.a.shown);
    const rb = timeRange(p.b.shown);
    const range = { lo: Math.min(ra.lo, rb.lo), hi: Math.max(ra.hi, rb.hi) };
    return `<section class="pair" id="pair-${i}" data-pair="${i}" data-scenario-a="${esc(p.a.scenario)}" data-scenario-b="${esc(p.b.scenario)}" data-backend="${esc(p.backend)}">
<h2>${esc(pairName(p))} <small>${esc(p.backend)} backend</small></h2>
${figuresTable(p, i)}
${sideFigure(p.a, 'a', labels.a, `${i}-a`, range)}
${sideFigure(p.b, 'b', labels.b, `${i}-b`, range)}
</section>`;
  });
  const unpaired = unpairedLines(c, labels);
  return htmlPage(title, `<header><h1>${esc(title)}</h1>
<p data-compare data-pairs="${c.pairs.length}">Generated ${esc((opts.now ?? new Date()).toISOString())}: A = <code>${esc(labels.a)}</code>, B = <code>${esc(labels.b)}</code>, ${c.pairs.length} pair${c.pairs.length === 1 ? '' : 's'}.</p></header>
<div class="explain">
<p><b>What this shows.</b> The same scenarios from two result files: A and B, and B−A, red where B is higher (worse), green where it is lower.
<b>lost</b> counts lost packets over all flows, <b>outage</b> is the worst flow's outage, <b>delay</b> the largest added latency of any flow, <b>downtime</b> the migration's (source stop to destination start).${repeated(c) ? ' Repeated scenarios count by their medians, and the timeline shown is the median run.' : ''}
Each pair's two timelines share one time axis, so a shift of the downtime or of the lost packets shows as a shift on the page.</p>
${LEGEND}
</div>
<table class="overview"><thead><tr><th>scenario</th><th>backend</th><th>verdict A</th><th>verdict B</th>${FIGURES.map((f) => `<th>${esc(f.label)} B−A${f.ms ? ' ms' : ''}</th>`).join('')}</tr></thead><tbody>${overview}</tbody></table>
${unpaired.map((l) => `<p class="note" data-unpaired>${esc(l)}</p>`).join('')}
${sections.join('\n')}`);
}
