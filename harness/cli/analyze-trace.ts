// `switchover analyze TRACE-DIR [--json]`: re-judges a trace folder (`run --trace`) offline,
// from its captures, with the run's parameters and the runner's own analysis and verdict code,
// and prints the verdict and figures beside those the run gave. Exit code as `run`'s: 0 pass,
// 1 fail, 2 error (or a trace that cannot be read or re-judged, saying why).
//
// API
//   analyzeTraceCommand(dir, { json }) -> exit code
//   sideBySide(a, b, [labelA, labelB]) -> text    two results of one scenario, row by row
import { buildJsonReport, exitCodeFor } from '../report/json.js';
import { fmtMs, renderTable } from '../report/table.js';
import { judgedParts, readTrace, rejudgeTrace } from '../run/trace-read.js';
import type { ScenarioResult } from '../scenario/types.js';

/** Two results of one scenario, one row per figure, a third column where they differ. */
export function sideBySide(a: ScenarioResult, b: ScenarioResult, labels: [string, string]): string {
  const rows: string[][] = [];
  const row = (what: string, x: string, y: string): void => { rows.push([what, x, y, x === y ? '' : 'differs']); };
  row('verdict', a.verdict, b.verdict);
  row('backend', `${a.backend} ${a.backendVersion ?? ''}`.trim(), `${b.backend} ${b.backendVersion ?? ''}`.trim());
  row('migration', a.migration.status, b.migration.status);
  row('downtime ms', fmtMs(a.migration.downtimeMs), fmtMs(b.migration.downtimeMs));
  row('total time ms', fmtMs(a.migration.totalTimeMs), fmtMs(b.migration.totalTimeMs));
  row('transferred bytes', `${a.migration.transferredBytes}`, `${b.migration.transferredBytes}`);
  row('precopy passes', `${a.migration.passes ?? '-'}`, `${b.migration.passes ?? '-'}`);
  for (let i = 0; i < Math.max(a.traffic.length, b.traffic.length); i++) {
    const fa = a.traffic[i], fb = b.traffic[i];
    const name = (fa ?? fb)!.kind;
    const get = (f: typeof fa, v: (x: NonNullable<typeof fa>) => string): string => (f ? v(f) : '-');
    row(`${name} ${i}: sent/received`, get(fa, (f) => `${f.sent}/${f.received}`), get(fb, (f) => `${f.sent}/${f.received}`));
    row(`${name} ${i}: lost`, get(fa, (f) => `${f.lost}`), get(fb, (f) => `${f.lost}`));
    row(`${name} ${i}: outage ms`, get(fa, (f) => fmtMs(f.outageMs)), get(fb, (f) => fmtMs(f.outageMs)));
    row(`${name} ${i}: delayed (max added ms)`, get(fa, (f) => `${f.delayed} (${fmtMs(f.maxAddedLatencyMs)})`), get(fb, (f) => `${f.delayed} (${fmtMs(f.maxAddedLatencyMs)})`));
    row(`${name} ${i}: duplicates/reordered`, get(fa, (f) => `${f.duplicates}/${f.reordered}`), get(fb, (f) => `${f.duplicates}/${f.reordered}`));
  }
  row('netpass cached/forwarded/dropped', `${a.netpass.cached}/${a.netpass.forwarded}/${a.netpass.dropped}`, `${b.netpass.cached}/${b.netpass.forwarded}/${b.netpass.dropped}`);
  row('announces', `${a.announces.length}`, `${b.announces.length}`);
  const out = [`${a.scenario}`, renderTable(['', ...labels, ''], rows, new Set([0, 3]))];
  for (const [label, r] of [[labels[0], a], [labels[1], b]] as const) {
    if (r.reason) out.push(`${label}: ${r.verdict}: ${r.reason}`);
  }
  return `${out.join('\n')}\n`;
}

export async function analyzeTraceCommand(dir: string, opts: { json: boolean }): Promise<number> {
  const trace = await readTrace(dir);
  const again = await rejudgeTrace(trace);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(buildJsonReport([again], { packets: true }), null, 2)}\n`);
  } else {
    process.stdout.write(sideBySide(trace.result, again, ['the run', 're-judged']));
    const same = JSON.stringify(judgedParts(trace.result)) === JSON.stringify(judgedParts(again));
    process.stdout.write(same
      ? 'same verdict and figures as the run, from the same captures\n'
      : 'the re-judged figures differ from the run\'s: the captures, trace.json or scenario.json changed since the run, or this switchover analyses differently\n');
  }
  return exitCodeFor([again]);
}
