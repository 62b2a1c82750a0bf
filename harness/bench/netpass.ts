// Bench section "netpass": the netpass design explorer (issue 17). The review of the netpass
// series left questions open: how often the forwarded backlog comes in behind newer frames,
// whether the destination guest's first frame is a better trigger than VM_STARTED, and how much
// delay netpass trades for the loss it saves. Every variant runs on the engine, on real
// networking, for each traffic, both layouts, and a prompt or a late `cont`, RUNS times each,
// one run at a time; one row per combination, the median of its runs, in one table a reviewer
// can paste into the thread.
//
// Variants (engine/migration/STREAM.md "netpass variants"):
//   off            no netpass: the loss netpass is for
//   series         netpass as in the series (VM_STARTED, as-series order)
//   backlog-first  x-netpass-order=backlog-first
//   first-tx       x-netpass-trigger=first-tx
//   max-age-20ms   x-netpass-max-age-ms=20 (the series otherwise)
// Measures, per run: lost and reordered summed over the flows, the deepest reordering, the
// added delay of the delayed packets (p50/p99/max, the worst flow's), the packets lost or later
// than the 20 ms deadline (lostOrLate, summed), the longest outage. A run the machine could not
// carry (`error`) is counted in `runs` and left out of the medians.
//
//   npm run bench -- --only netpass                  the table to stderr and out/netpass.txt
//   node dist/harness/bench/netpass.js [--runs N] [--variants A,B] [--traffic ping,udp,bidir]
//                                      [--layouts bridge,routed] [--cont prompt,late]
// Both write every run's result to out/netpass.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from '../../lib/stats.js';
import { renderTable } from '../report/table.js';
import { runScenario } from '../run/runner.js';
import { applyOverrides, defineScenario, type TrafficInput } from '../scenario/scenario.js';
import type { Layout, Scenario, ScenarioResult } from '../scenario/types.js';
import { engineBackend } from '../vm/engine.js';
import { networkUnavailable, ran } from './measure.js';
import { notAvailable, type BenchContext, type BenchRow, type BenchSection } from './section.js';

const SECTION = 'netpass';
export const RUNS = 5;
export const DEADLINE_MS = 20;
/** The late `cont`: long enough that every run has a backlog of thousands of frames at 10k/s. */
export const LATE_CONT_MS = 300;

export const VARIANTS: ReadonlyArray<{ name: string; sets: string[] }> = [
  { name: 'off', sets: ['netpass=off'] },
  { name: 'series', sets: [] },
  { name: 'backlog-first', sets: ['netpass-order=backlog-first'] },
  { name: 'first-tx', sets: ['netpass-trigger=first-tx'] },
  { name: 'max-age-20ms', sets: ['netpass-max-age=20'] },
];
export const TRAFFIC: ReadonlyArray<{ name: string; label: string; flows: TrafficInput[] }> = [
  { name: 'ping', label: 'ping 1 ms', flows: [{ kind: 'ping', intervalMs: 1 }] },
  { name: 'udp', label: 'UDP 10k/s in', flows: [{ kind: 'udp', rate: 10_000, direction: 'to-guest' }] },
  { name: 'bidir', label: 'UDP 5k/s each way', flows: [{ kind: 'udp', rate: 5000, direction: 'both' }] },
];
export const LAYOUTS: readonly Layout[] = ['bridge', 'routed'];
export const CONTS: ReadonlyArray<{ name: string; label: string; delayMs?: number }> = [
  { name: 'prompt', label: 'prompt' },
  { name: 'late', label: `+${LATE_CONT_MS} ms`, delayMs: LATE_CONT_MS },
];

/** What one run says about a variant. */
export interface RunFigures {
  lost: number; reordered: number; depth: number;
  delayP50: number; delayP99: number; delayMax: number;
  lostOrLate: number; outageMs: number;
}

export interface ExplorerRow {
  variant: string; traffic: string; layout: Layout; cont: string;
  /** Median of each figure over the runs that reached a verdict; null when none did. */
  median: RunFigures | null;
  runs: number; errors: number;
  /** Every run's result, for out/netpass.json. */
  results: ScenarioResult[];
}

/** The scenario of one combination: netpass with the variant's settings, the 20 ms deadline. */
export function explorerScenario(variant: string, traffic: string, layout: Layout, cont: string): Scenario {
  const v = VARIANTS.find((x) => x.name === variant);
  const t = TRAFFIC.find((x) => x.name === traffic);
  const c = CONTS.find((x) => x.name === cont);
  if (!v || !t || !c) throw new Error(`netpass bench: no combination ${variant}/${traffic}/${cont}`);
  const base = defineScenario({
    name: `netpass-${variant}-${traffic}-${layout}-${cont}`,
    description: `netpass bench: ${variant}, ${t.label}, ${layout}, cont ${c.label}`,
    topology: { layout },
    migration: { capabilities: ['events', 'return-path', 'netpass'], ...(c.delayMs ? { contDelayMs: c.delayMs } : {}) },
    traffic: { flows: t.flows },
    deadlineMs: DEADLINE_MS,
  });
  return applyOverrides(base, v.sets);
}

/** One run's figures (see the file header). */
export function figuresOf(r: ScenarioResult): RunFigures {
  const f = r.traffic;
  const worst = (pick: (d: NonNullable<(typeof f)[number]['addedDelayMs']>) => number): number =>
    Math.max(0, ...f.map((x) => (x.addedDelayMs ? pick(x.addedDelayMs) : 0)));
  return {
    lost: f.reduce((n, x) => n + x.lost, 0),
    reordered: f.reduce((n, x) => n + x.reordered, 0),
    depth: Math.max(0, ...f.map((x) => x.reorderedMaxDepth ?? 0)),
    delayP50: worst((d) => d.p50), delayP99: worst((d) => d.p99), delayMax: worst((d) => d.max),
    lostOrLate: f.reduce((n, x) => n + (x.lostOrLate ?? x.lost), 0),
    outageMs: Math.max(0, ...f.map((x) => x.outageMs)),
  };
}

/** The per-figure median of the runs that reached a verdict. */
export function medianFigures(results: readonly ScenarioResult[]): RunFigures | null {
  const figs = results.filter(ran).map(figuresOf);
  if (!figs.length) return null;
  const m = (k: keyof RunFigures): number => median(figs.map((x) => x[k]));
  return {
    lost: m('lost'), reordered: m('reordered'), depth: m('depth'), delayP50: m('delayP50'), delayP99: m('delayP99'),
    delayMax: m('delayMax'), lostOrLate: m('lostOrLate'), outageMs: m('outageMs'),
  };
}

export interface ExplorerOptions {
  runs?: number; variants?: string[]; traffic?: string[]; layouts?: Layout[]; conts?: string[];
  onRow?: (row: ExplorerRow) => void;
}

/** Every combination RUNS times, one run at a time; traffic outermost, so one traffic's rows finish together. */
export async function runExplorer(o: ExplorerOptions = {}): Promise<ExplorerRow[]> {
  const rows: ExplorerRow[] = [];
  const runs = o.runs ?? RUNS;
  for (const t of TRAFFIC.filter((x) => !o.traffic || o.traffic.includes(x.name))) {
    for (const layout of LAYOUTS.filter((x) => !o.layouts || o.layouts.includes(x))) {
      for (const c of CONTS.filter((x) => !o.conts || o.conts.includes(x.name))) {
        for (const v of VARIANTS.filter((x) => !o.variants || o.variants.includes(x.name))) {
          const s = explorerScenario(v.name, t.name, layout, c.name);
          const results: ScenarioResult[] = [];
          for (let i = 0; i < runs; i++) results.push(await runScenario(s, { backend: engineBackend }));
          const row: ExplorerRow = {
            variant: v.name, traffic: t.label, layout, cont: c.label, median: medianFigures(results),
            runs: results.length, errors: results.filter((r) => r.verdict === 'error').length, results,
          };
          rows.push(row);
          o.onRow?.(row);
        }
      }
    }
  }
  return rows;
}

const num = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(1));

export function renderExplorerTable(rows: readonly ExplorerRow[], runs = RUNS): string {
  const body = rows.map((r) => {
    const m = r.median;
    const runsCell = r.errors ? `${r.runs - r.errors}/${r.runs}` : String(r.runs);
    if (!m) return [r.variant, r.traffic, r.layout, r.cont, '-', '-', '-', '-', '-', runsCell];
    return [
      r.variant, r.traffic, r.layout, r.cont, num(m.lost), m.reordered ? `${num(m.reordered)} (${num(m.depth)})` : '0',
      `${num(m.delayP50)}/${num(m.delayP99)}/${num(m.delayMax)}`, num(m.lostOrLate), num(m.outageMs), runsCell,
    ];
  });
  return [
    `netpass variants on the engine, median of ${runs} runs each (switchover bench --only netpass)`,
    renderTable(['variant', 'traffic', 'layout', 'cont', 'lost', 'reordered (depth)', 'added ms p50/p99/max', `lost+late>${DEADLINE_MS}ms`, 'outage ms', 'runs'],
      body, new Set([0, 1, 2, 3])),
    'reordered: arrivals behind a higher seq, summed over flows; depth: the furthest behind. added ms: the delayed packets\' added',
    `latency, the worst flow's. lost+late: lost, or answered more than ${DEADLINE_MS} ms late. runs: runs that reached a verdict / runs (the rest: error, the machine could not carry them).`,
  ].join('\n');
}

/** The table to out/netpass.txt, every run to out/netpass.json. */
export function writeExplorer(root: string, rows: readonly ExplorerRow[], runs = RUNS): { text: string; txt: string; json: string } {
  const text = renderExplorerTable(rows, runs);
  const dir = join(root, 'out');
  mkdirSync(dir, { recursive: true });
  const txt = join(dir, 'netpass.txt');
  const json = join(dir, 'netpass.json');
  writeFileSync(txt, `${text}\n`);
  writeFileSync(json, `${JSON.stringify({ generatedAt: new Date().toISOString(), runs, deadlineMs: DEADLINE_MS, rows }, null, 2)}\n`);
  return { text, txt, json };
}

export const netpassSection: BenchSection = {
  name: SECTION,
  what: `netpass variants x ping/10k UDP/bidirectional UDP x both layouts x prompt/late cont, ${RUNS} runs each, on the engine`,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const cannot = networkUnavailable();
    if (cannot) return [notAvailable(SECTION, 'netpass variants', cannot)];
    const rows = await runExplorer({ onRow: (r) => process.stderr.write(`bench: netpass: ${r.variant} ${r.traffic} ${r.layout} ${r.cont}: ${r.runs - r.errors}/${r.runs} judged\n`) });
    const { text, txt } = writeExplorer(ctx.root, rows);
    process.stderr.write(`${text}\n`);
    return VARIANTS.map((v) => {
      const mine = rows.filter((r) => r.variant === v.name);
      const total = (k: keyof RunFigures): number => mine.reduce((n, r) => n + (r.median?.[k] ?? 0), 0);
      return {
        section: SECTION, measure: `${v.name}: lost / reordered / lost+late>${DEADLINE_MS}ms, summed over ${mine.length} medians`,
        value: total('lost'), unit: `lost; ${num(total('reordered'))} reordered; ${num(total('lostOrLate'))} lost or late`, note: `table: ${txt}`,
      };
    });
  },
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    args: process.argv.slice(2), strict: true,
    options: { runs: { type: 'string' }, variants: { type: 'string' }, traffic: { type: 'string' }, layouts: { type: 'string' }, cont: { type: 'string' } },
  });
  const list = (v: string | undefined, known: readonly string[], what: string): string[] | undefined => {
    if (v === undefined) return undefined;
    const items = v.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = items.filter((x) => !known.includes(x));
    if (bad.length) throw new Error(`netpass bench: unknown ${what} ${bad.join(', ')}; known: ${known.join(', ')}`);
    return items;
  };
  (async () => {
    const runs = Number(values.runs ?? RUNS);
    if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error(`netpass bench: --runs "${values.runs}" must be an integer from 1 to 20`);
    const cannot = networkUnavailable();
    if (cannot) throw new Error(`netpass bench: ${cannot}`);
    const o: ExplorerOptions = {
      runs,
      ...(values.variants ? { variants: list(values.variants, VARIANTS.map((x) => x.name), 'variant') } : {}),
      ...(values.traffic ? { traffic: list(values.traffic, TRAFFIC.map((x) => x.name), 'traffic') } : {}),
      ...(values.layouts ? { layouts: list(values.layouts, LAYOUTS, 'layout') as Layout[] } : {}),
      ...(values.cont ? { conts: list(values.cont, CONTS.map((x) => x.name), 'cont') } : {}),
      onRow: (r) => process.stderr.write(`netpass: ${r.variant} ${r.traffic} ${r.layout} ${r.cont}: ${r.runs - r.errors}/${r.runs} judged\n`),
    };
    const rows = await runExplorer(o);
    const { text, json } = writeExplorer(fileURLToPath(new URL('../../../', import.meta.url)), rows, runs);
    process.stdout.write(`${text}\n(every run: ${json})\n`);
  })().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  });
}
