// The terminal table of a run: one row per scenario, its flows indented beneath, failed
// expectations spelled out, and a summary line. Plain text (no colour codes), so it reads
// the same in a CI log as on a terminal.
import type { FlowResult, LossCause, ScenarioResult } from '../scenario/types.js';

/** Text columns left-aligned (the first `left` columns, or the given indexes), numbers
 * right-aligned; columns sized to their content. */
export function renderTable(headers: string[], rows: string[][], left: number | Set<number> = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const isLeft = (i: number): boolean => (typeof left === 'number' ? i < left : left.has(i));
  const line = (cells: string[]): string => cells
    .map((c, i) => (isLeft(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
    .join('  ')
    .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "3-7,9,12-13": a seq list folded into runs. */
export function formatSeqs(seqs: number[], max = 12): string {
  if (seqs.length === 0) return '-';
  const runs: string[] = [];
  let start = seqs[0]!;
  let prev = start;
  for (let i = 1; i <= seqs.length; i++) {
    const s = seqs[i];
    if (s === prev + 1) { prev = s; continue; }
    runs.push(start === prev ? `${start}` : `${start}-${prev}`);
    if (s !== undefined) { start = s; prev = s; }
  }
  return runs.length > max ? `${runs.slice(0, max).join(',')},… (${seqs.length} seqs)` : runs.join(',');
}

export const fmtMs = (v: number): string => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : '-');

export const FLOW_HEADERS = ['flow', 'sent', 'recv', 'lost', 'delayed', 'dup', 'reord', 'in-flight', 'outage ms', 'max gap ms', 'added ms', 'base rtt ms'];

export function flowRow(f: FlowResult, indent = ''): string[] {
  // "3 (depth 6)": how far behind the worst reordered packet came (analyzer.ts header).
  const reord = f.reordered > 0 && f.reorderedMaxDepth !== undefined ? `${f.reordered} (depth ${f.reorderedMaxDepth})` : `${f.reordered}`;
  return [
    `${indent}${f.flow}`, `${f.sent}`, `${f.received}`, `${f.lost}`, `${f.delayed}`, `${f.duplicates}`, reord,
    `${f.inFlight}`, fmtMs(f.outageMs), fmtMs(f.maxGapMs), fmtMs(f.maxAddedLatencyMs), f.baselineRttMs.toFixed(3),
  ];
}

/**
 * The per-flow table: FLOW_HEADERS, plus a `lost/late>Dms` column (FlowResult.lostOrLate: lost
 * and later than the deadline) when any flow was judged against a deadline. Flows judged
 * against different deadlines name theirs in the cell; a flow with none shows "-".
 */
export function renderFlowTable(flows: ReadonlyArray<{ flow: FlowResult; indent?: string }>): string {
  const deadlines = [...new Set(flows.flatMap(({ flow }) => (flow.deadlineMs !== undefined ? [flow.deadlineMs] : [])))];
  if (!deadlines.length) return renderTable(FLOW_HEADERS, flows.map(({ flow, indent }) => flowRow(flow, indent)));
  const one = deadlines.length === 1 ? deadlines[0] : undefined;
  const headers = [...FLOW_HEADERS, `lost/late>${one !== undefined ? `${one}ms` : 'deadline'}`];
  return renderTable(headers, flows.map(({ flow, indent }) => [
    ...flowRow(flow, indent),
    flow.lostOrLate === undefined ? '-' : one !== undefined ? `${flow.lostOrLate}` : `${flow.lostOrLate} (>${flow.deadlineMs}ms)`,
  ]));
}

/** "35 stopped-source (tap0)", "2 tap-queue tap1 (paused)". */
export function describeLossCause(c: LossCause): string {
  if (c.cause === 'tap-queue') return `${c.count} tap-queue ${c.where ?? '?'} (${c.vm ?? '?'})`;
  return `${c.count} ${c.cause}${c.where ? ` (${c.where})` : ''}`;
}

/** "lost 37: 35 stopped-source (tap0), 2 tap-queue tap1 (paused)" over a scenario's flows;
 * undefined when nothing was lost. */
export function lossCausesLine(flows: FlowResult[]): string | undefined {
  const lost = flows.reduce((n, f) => n + f.lost, 0);
  if (!lost) return undefined;
  const by = new Map<string, LossCause>();
  for (const c of flows.flatMap((f) => f.lossCauses ?? [])) {
    const k = `${c.cause}|${c.where ?? ''}|${c.vm ?? ''}`;
    const had = by.get(k);
    by.set(k, { ...c, count: (had?.count ?? 0) + c.count, seqs: [] });
  }
  const causes = [...by.values()].sort((a, b) => b.count - a.count);
  return `lost ${lost}: ${causes.length ? causes.map(describeLossCause).join(', ') : 'no causes recorded'}`;
}

export interface RunSummary { total: number; pass: number; fail: number; unsupported: number; error: number }

export function summarize(results: ScenarioResult[]): RunSummary {
  const s: RunSummary = { total: results.length, pass: 0, fail: 0, unsupported: 0, error: 0 };
  for (const r of results) s[r.verdict]++;
  return s;
}

/** The whole table for a run, ending with the summary line. */
export function renderResultsTable(results: ScenarioResult[]): string {
  const headers = ['scenario', 'backend', 'verdict', 'downtime ms', 'lost', 'delayed', 'outage ms', 'in-flight', 'announces', 'wall s'];
  const rows = results.map((r) => {
    const lost = r.traffic.reduce((s, f) => s + f.lost, 0);
    const delayed = r.traffic.reduce((s, f) => s + f.delayed, 0);
    const outage = r.traffic.reduce((s, f) => Math.max(s, f.outageMs), 0);
    const inFlight = r.traffic.reduce((s, f) => s + f.inFlight, 0);
    return [
      r.scenario, r.backend, r.verdict.toUpperCase(), fmtMs(r.migration.downtimeMs), `${lost}`, `${delayed}`,
      fmtMs(outage), `${inFlight}`, `${r.announces.length}`, (r.wallMs / 1000).toFixed(1),
    ];
  });
  const out = [renderTable(headers, rows, 3)];
  const details: string[] = [];
  for (const r of results) {
    const lines: string[] = [];
    if (r.reason && r.verdict !== 'pass') lines.push(`  ${r.verdict}: ${r.reason}`);
    const causes = lossCausesLine(r.traffic);
    if (causes) lines.push(`  ${causes}`);
    for (const e of r.expectations.filter((x) => !x.ok)) lines.push(`  ✗ ${e.name}: expected ${e.expected}, got ${e.actual}`);
    for (const f of r.traffic.filter((x) => x.lost > 0)) lines.push(`  lost on ${f.flow}: ${formatSeqs(f.lostSeqs)}`);
    if (r.macFlapping) lines.push('  MAC flapping: the guest MAC was seen on the destination before handover');
    if (lines.length) details.push(`${r.scenario} (${r.backend}):`, ...lines);
  }
  if (details.length) out.push('', ...details);
  const flows = results.flatMap((r) => r.traffic.map((flow) => ({ flow, indent: `${r.scenario}: ` })));
  if (flows.length) out.push('', renderFlowTable(flows));
  const s = summarize(results);
  out.push('', `${s.total} scenarios: ${s.pass} pass, ${s.fail} fail, ${s.unsupported} unsupported, ${s.error} error`);
  return out.join('\n');
}
