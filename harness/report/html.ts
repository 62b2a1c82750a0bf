// The `--report FILE` HTML report: one self-contained file (inline CSS, inline SVG, a few
// lines of inline JS, no external assets) that someone who was not there can read.
// Per scenario: the verdict and why, the numbers, a timeline of the migration phases from
// the QMP events with the downtime marked, each flow's packets (every lost, delayed and
// reordered one as a mark of its own, the healthy ones as runs: marks.ts), the announce
// frames and bridge FDB moves, the expectations, where each lost packet died, the harness's
// own health counters, and links to the kept pcaps. The compare view (compare.ts) reuses the
// timeline and the page.
//
// Elements carry stable data attributes for tests and scripts: section[data-scenario]
// [data-verdict], svg[data-timeline], rect[data-downtime-ms], .pkt[data-flow][data-seq]
// [data-state] (runs add [data-last-seq][data-count], reordered packets [data-reordered]),
// .announce[data-kind], .fdb[data-mac], tr[data-expectation][data-ok],
// li[data-loss-cause][data-count], dl[data-health].
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { describeLossCause, fmtMs, formatSeqs, lossCausesLine, summarize } from './table.js';
import { flowMarks, RUN_GAP_MS, type PacketMark, type PacketState, type ReportFlow } from './marks.js';
import type { ScenarioResult, TimelineEvent } from '../scenario/types.js';

export interface HtmlReportOptions {
  title?: string;
  /** Where the report will be written: pcap links are made relative to it. */
  reportFile?: string;
  now?: Date;
}

/** The one escaping helper for text and attribute values of the HTML reports. */
export const esc = (s: string | number): string => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')
  .replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const slug = (s: string): string => s.replace(/[^A-Za-z0-9_-]+/g, '-');

export interface TimeRange { lo: number; hi: number }

const W = 1100;
const LEFT = 170;
const RIGHT = 20;
const LANE = 28;
const PLOT = W - LEFT - RIGHT;

function niceStep(span: number): number {
  const raw = span / 10;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function phaseColor(what: string): string {
  if (/fail|cancel|error|kill|crash/i.test(what)) return '#e6550d33';
  if (/setup/i.test(what)) return '#9ecae1';
  if (/active|pass|precopy/i.test(what)) return '#6baed6';
  if (/device|stop|paused|finish/i.test(what)) return '#fdae6b';
  if (/complete|resume|running|cont|started/i.test(what)) return '#a1d99b';
  return '#d9d9d9';
}

/** The downtime window: source STOP to destination RESUME / VM_STARTED from the events, or
 * else the reported downtime ending at the `completed` event. */
function downtimeWindow(r: ScenarioResult): { from: number; to: number; source: string } | null {
  const stop = r.timeline.find((e) => e.source === 'src' && /\bSTOP\b/.test(e.what));
  if (stop) {
    const start = r.timeline.find((e) => e.source === 'dst' && e.t >= stop.t && /RESUME|VM_STARTED/.test(e.what));
    if (start) return { from: stop.t, to: start.t, source: `source STOP to destination ${start.what}` };
  }
  const done = r.timeline.find((e) => /completed/.test(e.what));
  if (done && r.migration.downtimeMs > 0) {
    return { from: done.t - r.migration.downtimeMs, to: done.t, source: 'reported downtime, ending at completion' };
  }
  return null;
}

/** The span a result's timeline covers, ms: its events, packet marks, announces and FDB
 * moves, with a margin. The compare view draws two results over the union of their spans. */
export function timeRange(r: ScenarioResult): TimeRange {
  const times: number[] = [0];
  for (const e of r.timeline) times.push(e.t);
  for (const f of r.traffic) for (const m of flowMarks(f) ?? []) times.push(m.t, m.lastT ?? m.t);
  for (const a of r.announces) times.push(a.t);
  for (const m of r.fdbMoves) times.push(m.t);
  let lo = Math.min(...times);
  let hi = Math.max(...times);
  if (hi - lo < 10) { lo -= 5; hi += 5; }
  const pad = (hi - lo) * 0.02;
  return { lo: lo - pad, hi: hi + pad };
}

/** One result's timeline as inline SVG, over `range` (default its own). `id` goes in data-timeline. */
export function timelineSvg(r: ScenarioResult, id: string | number, range: TimeRange = timeRange(r)): string {
  const { lo, hi } = range;
  const x = (t: number): number => LEFT + ((t - lo) / (hi - lo)) * PLOT;
  const down = downtimeWindow(r);

  type Lane = { label: string; body: (y: number) => string };
  const lanes: Lane[] = [];
  for (const [source, label] of [['src', 'source VM (QMP)'], ['dst', 'destination VM (QMP)'], ['harness', 'harness']] as const) {
    const ev = r.timeline.filter((e) => e.source === source).sort((a, b) => a.t - b.t);
    if (!ev.length) continue;
    lanes.push({ label, body: (y) => eventLane(ev, x, y, hi) });
  }
  r.traffic.forEach((f, i) => lanes.push({ label: f.flow, body: (y) => flowLane(f, i, x, y) }));
  lanes.push({
    label: `announces (${r.announces.length})`,
    body: (y) => r.announces.map((a) => `<path class="announce" data-kind="${esc(a.kind)}" data-t="${a.t}" d="M${x(a.t).toFixed(1)},${y + 6}l5,8h-10z"><title>${esc(`${a.kind.toUpperCase()} from ${a.mac} on ${a.iface} at ${fmtMs(a.t)} ms`)}</title></path>`).join(''),
  });
  if (r.fdbMoves.length) {
    lanes.push({
      label: `bridge FDB moves (${r.fdbMoves.length})`,
      body: (y) => r.fdbMoves.map((m) => `<circle class="fdb" data-mac="${esc(m.mac)}" data-t="${m.t}" cx="${x(m.t).toFixed(1)}" cy="${y + LANE / 2}" r="4"><title>${esc(`${m.mac} moved to ${m.port} at ${fmtMs(m.t)} ms`)}</title></circle>`).join(''),
    });
  }

  const top = 24;
  const height = top + lanes.length * LANE + 40;
  const parts: string[] = [];
  parts.push(`<svg class="timeline" data-timeline="${esc(id)}" viewBox="0 0 ${W} ${height}" width="100%" role="img" aria-label="${esc(`timeline of ${r.scenario}`)}" xmlns="http://www.w3.org/2000/svg">`);
  const step = niceStep(hi - lo);
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
    const xx = x(t).toFixed(1);
    parts.push(`<line class="grid" x1="${xx}" x2="${xx}" y1="${top}" y2="${height - 30}"/><text class="tick" x="${xx}" y="${height - 16}" text-anchor="middle">${esc(fmtMs(t))}</text>`);
  }
  parts.push(`<text class="axis-label" x="${LEFT + PLOT / 2}" y="${height - 2}" text-anchor="middle">time in ms relative to the migrate command (t = 0)</text>`);
  if (down) {
    parts.push(`<rect class="downtime" data-downtime-ms="${r.migration.downtimeMs}" x="${x(down.from).toFixed(1)}" y="${top - 6}" width="${Math.max(1.5, x(down.to) - x(down.from)).toFixed(1)}" height="${lanes.length * LANE + 6}"><title>${esc(`downtime ${fmtMs(r.migration.downtimeMs)} ms (${down.source}): ${fmtMs(down.from)} to ${fmtMs(down.to)} ms`)}</title></rect>`);
    parts.push(`<text class="downtime-label" x="${x(down.from).toFixed(1)}" y="${top - 10}">downtime ${esc(fmtMs(r.migration.downtimeMs))} ms</text>`);
  }
  const x0 = x(0).toFixed(1);
  parts.push(`<line class="t0" x1="${x0}" x2="${x0}" y1="${top - 6}" y2="${height - 30}"/><text class="t0-label" x="${x0}" y="${top - 10}" text-anchor="end">migrate </text>`);
  lanes.forEach((lane, i) => {
    const y = top + i * LANE;
    parts.push(`<g class="lane" data-lane="${esc(lane.label)}"><line class="lane-sep" x1="${LEFT}" x2="${W - RIGHT}" y1="${y + LANE}" y2="${y + LANE}"/>`);
    parts.push(`<text class="lane-label" x="${LEFT - 6}" y="${y + LANE / 2 + 4}" text-anchor="end">${esc(lane.label.length > 24 ? `${lane.label.slice(0, 23)}…` : lane.label)}<title>${esc(lane.label)}</title></text>`);
    parts.push(lane.body(y), '</g>');
  });
  parts.push('</svg>');
  return parts.join('');
}

function eventLane(ev: TimelineEvent[], x: (t: number) => number, y: number, hi: number): string {
  const out: string[] = [];
  ev.forEach((e, i) => {
    const end = ev[i + 1]?.t ?? hi;
    const x1 = x(e.t);
    const w = Math.max(0, x(end) - x1);
    out.push(`<rect class="phase" data-what="${esc(e.what)}" x="${x1.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${LANE - 8}" fill="${phaseColor(e.what)}"><title>${esc(`${e.what} at ${fmtMs(e.t)} ms`)}</title></rect>`);
    out.push(`<line class="event" data-event="${esc(e.what)}" data-t="${e.t}" x1="${x1.toFixed(1)}" x2="${x1.toFixed(1)}" y1="${y + 2}" y2="${y + LANE - 2}"/>`);
    if (w > 7 * Math.min(e.what.length, 18)) out.push(`<text class="phase-label" x="${(x1 + 3).toFixed(1)}" y="${y + LANE / 2 + 4}">${esc(e.what.slice(0, 18))}</text>`);
  });
  return out.join('');
}

const MARK_H: Record<PacketState, number> = { ok: 8, delayed: 16, lost: 22, 'in-flight': 14 };

function flowLane(f: ReportFlow, i: number, x: (t: number) => number, y: number): string {
  const out: string[] = [];
  // The analyzer's outage window (PcapFlow adds it to FlowResult), as a bracket under the marks.
  if (typeof f.outageStartMs === 'number' && typeof f.outageEndMs === 'number') {
    const x1 = x(f.outageStartMs);
    out.push(`<rect class="outage" data-flow="${i}" data-outage-ms="${f.outageMs}" x="${x1.toFixed(1)}" y="${y + LANE - 4}" width="${Math.max(1.5, x(f.outageEndMs) - x1).toFixed(1)}" height="3"><title>${esc(`outage ${fmtMs(f.outageMs)} ms: ${fmtMs(f.outageStartMs)} to ${fmtMs(f.outageEndMs)} ms`)}</title></rect>`);
  }
  const marks = flowMarks(f);
  if (!marks) {
    out.push(`<text class="note" x="${LEFT + 6}" y="${y + LANE / 2 + 4}">${esc(`${f.sent} packets: no per-packet marks recorded; see the table`)}</text>`);
    return out.join('');
  }
  const when = f.mode === 'one-way' ? 'arrived' : 'sent';
  const num = (v: number): string => `${Number(v.toFixed(1))}`;
  // A single packet carries its details as data (the hover script spells them out): a
  // <title> each would be a third of a report whose netpass flows delay thousands of packets.
  const rect = (m: PacketMark): string => {
    const h = MARK_H[m.state] ?? 8;
    const x1 = x(m.t) - 1;
    const w = m.lastT === undefined ? 2 : Math.max(2, x(m.lastT) + 1 - x1);
    const head = `<rect class="pkt ${m.state}${m.reordered ? ' reordered' : ''}" data-flow="${i}" data-seq="${m.seq}" data-state="${m.state}"`;
    const box = `x="${num(x1)}" y="${num(y + (LANE - h) / 2)}" width="${num(w)}" height="${h}"`;
    if (!m.count) {
      return `${head}${m.reordered ? ' data-reordered' : ''} data-t="${m.t}"${m.rttMs === undefined ? '' : ` data-rtt="${m.rttMs}"`} ${box}/>`;
    }
    const rtt = m.rttMs === undefined ? '' : `, rtt up to ${m.rttMs} ms`;
    const tip = `seq ${m.seq}-${m.lastSeq} ${m.state}: ${m.count} packets ${when} from ${fmtMs(m.t)} to ${fmtMs(m.lastT!)} ms${rtt}`;
    return `${head} data-last-seq="${m.lastSeq}" data-count="${m.count}" ${box}><title>${esc(tip)}</title></rect>`;
  };
  // Healthy runs first, so that the affected marks, drawn later, are painted over them.
  const affected = (m: PacketMark): boolean => m.reordered === true || (m.state !== 'ok' && m.state !== 'in-flight');
  for (const m of marks) if (!affected(m)) out.push(rect(m));
  for (const m of marks) if (affected(m)) out.push(rect(m));
  return out.join('');
}

function numbers(r: ScenarioResult): string {
  const m = r.migration;
  const items: Array<[string, string]> = [
    ['migration', m.status],
    ['downtime', `${fmtMs(m.downtimeMs)} ms`],
    ['total time', `${fmtMs(m.totalTimeMs)} ms`],
    ['transferred', `${(m.transferredBytes / 1048576).toFixed(1)} MiB`],
    ['netpass cached / forwarded / dropped', `${r.netpass.cached} / ${r.netpass.forwarded} / ${r.netpass.dropped}`],
    ['announce frames', `${r.announces.length}`],
    ['MAC flapping', r.macFlapping ? 'yes: guest MAC seen on the destination before handover' : 'no'],
    ['wall time', `${(r.wallMs / 1000).toFixed(1)} s`],
  ];
  if (m.passes !== undefined) items.splice(4, 0, ['precopy passes', `${m.passes}`]);
  if (r.accelerator) items.push(['accelerator', r.accelerator]);
  return `<dl class="numbers">${items.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('')}</dl>`;
}

function flowTable(r: ScenarioResult): string {
  if (!r.traffic.length) return '<p class="note">No traffic flows were analysed.</p>';
  const head = ['flow', 'sent', 'received', 'lost', 'lost seqs', 'delayed', 'max added ms', 'duplicates', 'reordered', 'outage ms', 'max gap ms', 'in flight', 'baseline rtt ms'];
  const rows = r.traffic.map((f, i) => `<tr data-flow="${i}" data-lost="${f.lost}">${[
    f.flow, f.sent, f.received, f.lost, formatSeqs(f.lostSeqs), f.delayed, fmtMs(f.maxAddedLatencyMs), f.duplicates,
    f.reordered, fmtMs(f.outageMs), fmtMs(f.maxGapMs), f.inFlight, f.baselineRttMs.toFixed(3),
  ].map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`);
  return `<table class="flows"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>${lossCauses(r)}`;
}

/** Where the lost packets died, per flow (loss-causes.ts). */
function lossCauses(r: ScenarioResult): string {
  const line = lossCausesLine(r.traffic);
  if (!line) return '';
  const flows = r.traffic.filter((f) => f.lost > 0).map((f) => {
    const items = (f.lossCauses ?? []).map((c) => `<li data-loss-cause="${esc(c.cause)}" data-count="${c.count}">${esc(describeLossCause(c))}: seqs ${esc(formatSeqs(c.seqs))}</li>`);
    return `<li>${esc(f.flow)}<ul>${items.join('')}</ul></li>`;
  });
  return `<div class="loss-causes"><p><b>${esc(line)}</b></p><ul>${flows.join('')}</ul></div>`;
}

/** The kernel's and the harness's own counters over the run: where the machine dropped. */
function health(r: ScenarioResult): string {
  const h = r.health;
  if (!h) return '';
  const items: Array<[string, string]> = [
    ...h.taps.map((t): [string, string] => [`${t.name} tx_dropped (txqueuelen ${t.txqueuelen})`, `${t.txDropped}`]),
    [`${h.clientVeth.name} tx_dropped`, `${h.clientVeth.txDropped}`],
    ['client netns UDP RcvbufErrors / SndbufErrors', `${h.udp.client.rcvbufErrors} / ${h.udp.client.sndbufErrors}`],
    ['ARP unresolved_discards (machine-wide)', `${h.arpUnresolvedDiscards}`],
    ...h.captures.map((c): [string, string] => [`tcpdump ${c.iface}: captured / dropped by kernel`, `${c.captured} / ${c.droppedByKernel}`]),
    ...h.generators.map((g, i): [string, string] => [`UDP generator ${i + 1}: achieved / asked per s`, `${g.achievedRate} / ${g.askedRate}${g.socketDrops ? `, ${g.socketDrops} socket drops` : ''}`]),
  ];
  const worst = h.engineStalls.reduce<(typeof h.engineStalls)[number] | undefined>((w, x) => (!w || x.maxMs > w.maxMs ? x : w), undefined);
  if (worst) items.push(['longest engine stall', `${fmtMs(worst.maxMs)} ms (${worst.vm}, ${worst.phase})`]);
  return `<h3>Harness health</h3><dl class="numbers" data-health>${items.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('')}</dl>`;
}

function expectationTable(r: ScenarioResult): string {
  if (!r.expectations.length) return '<p class="note">This scenario states no expectations.</p>';
  const rows = r.expectations.map((e) => `<tr data-expectation="${esc(e.name)}" data-ok="${e.ok}" class="${e.ok ? 'ok' : 'bad'}"><td>${e.ok ? '✓' : '✗'}</td><td>${esc(e.name)}</td><td>${esc(e.expected)}</td><td>${esc(e.actual)}</td></tr>`);
  return `<table class="expectations"><thead><tr><th></th><th>expectation</th><th>expected</th><th>actual</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function eventsTable(r: ScenarioResult): string {
  if (!r.timeline.length) return '';
  const rows = [...r.timeline].sort((a, b) => a.t - b.t).map((e) => `<tr><td>${esc(fmtMs(e.t))}</td><td>${esc(e.source)}</td><td>${esc(e.what)}</td></tr>`);
  return `<details><summary>All ${r.timeline.length} timeline events</summary><table class="events"><thead><tr><th>t ms</th><th>from</th><th>event</th></tr></thead><tbody>${rows.join('')}</tbody></table></details>`;
}

/** A link to a file of the run, relative to the report so the two can move together. */
function fileHref(p: string, reportFile?: string): string {
  if (!reportFile) return p;
  const abs = isAbsolute(p) ? p : resolve(p);
  return relative(dirname(resolve(reportFile)), abs).split('/').map(encodeURIComponent).join('/');
}

function pcapLinks(r: ScenarioResult, reportFile?: string): string {
  if (!r.pcaps?.length) return '<p class="note">No pcaps kept (run with <code>--keep-pcaps DIR</code> to keep them).</p>';
  const href = (p: string): string => fileHref(p, reportFile);
  return `<p class="pcaps">Kept pcaps (open with Wireshark, or <code>switchover analyze FILE</code>): ${r.pcaps.map((p) => `<a href="${esc(href(p))}" data-pcap>${esc(p)}</a>`).join(', ')}</p>`;
}

/** A failed run's trace folder (`run --trace`), with the commands that use it. */
function traceLink(r: ScenarioResult, reportFile?: string): string {
  if (!r.trace || (r.verdict !== 'fail' && r.verdict !== 'error')) return '';
  return `<p class="trace">Trace: <a href="${esc(`${fileHref(r.trace, reportFile)}/README.md`)}" data-trace="${esc(r.trace)}">${esc(r.trace)}</a> (re-judge it: <code>switchover analyze ${esc(r.trace)}</code>; rerun it: <code>switchover replay ${esc(r.trace)}</code>)</p>`;
}

function scenarioSection(r: ScenarioResult, idx: number, opts: HtmlReportOptions): string {
  return `<section class="scenario" id="s-${esc(slug(r.scenario))}-${esc(r.backend)}" data-scenario="${esc(r.scenario)}" data-backend="${esc(r.backend)}" data-verdict="${esc(r.verdict)}">
<h2>${esc(r.scenario)} <span class="badge ${esc(r.verdict)}">${esc(r.verdict.toUpperCase())}</span> <small>${esc(r.backend)} backend, started ${esc(r.startedAt)}</small></h2>
${r.reason ? `<p class="reason">${esc(r.reason)}</p>` : ''}
${traceLink(r, opts.reportFile)}
${numbers(r)}
<figure>${timelineSvg(r, idx)}<figcaption>Migration phases from the QMP events, the downtime window (shaded red), each flow's packets at their send times (a mark per lost, delayed or reordered packet, a bar per run of healthy ones), and the announce frames. Hover a mark for details.</figcaption></figure>
<h3>Flows</h3>${flowTable(r)}
<h3>Expectations</h3>${expectationTable(r)}
${health(r)}
${eventsTable(r)}
${pcapLinks(r, opts.reportFile)}
</section>`;
}

// The legend and the checkbox that hides healthy marks, shared by the report and the compare view.
export const LEGEND = `<p>Times are in milliseconds relative to the <code>migrate</code> command (t = 0). Legend:</p>
<svg class="legend" viewBox="0 0 1070 26" width="1070" height="26" xmlns="http://www.w3.org/2000/svg">
<rect class="pkt ok" x="4" y="9" width="14" height="8"/><text x="22" y="17">ok (a run of ok packets)</text>
<rect class="pkt delayed" x="170" y="5" width="2" height="16"/><text x="178" y="17">delayed (over the flow's baseline)</text>
<rect class="pkt lost" x="395" y="2" width="2" height="22"/><text x="403" y="17">lost</text>
<rect class="pkt ok reordered" x="440" y="9" width="2" height="8"/><text x="448" y="17">reordered</text>
<rect class="pkt in-flight" x="518" y="6" width="2" height="14"/><text x="526" y="17">in flight at capture end (not loss)</text>
<rect class="downtime" x="745" y="3" width="14" height="20"/><text x="765" y="17">downtime</text>
<path class="announce" d="M841,6l5,8h-10z"/><text x="853" y="17">announce frame</text>
<circle class="fdb" cx="955" cy="13" r="4"/><text x="965" y="17">bridge FDB move</text></svg>
<p>Every lost, delayed and reordered packet has a mark of its own; healthy packets are drawn as runs, one bar per stretch of consecutive ok (or in-flight) packets with no pause in sending over ${RUN_GAP_MS} ms or twice the flow's usual interval.
A thin red bar under a flow's marks is its outage window: the longest run of affected (lost or delayed) packets, from the first one's send to the last one's recovery.</p>
<p><label><input type="checkbox" id="affected-only"> show only affected packets (hide ok marks)</label></p>`;

const CSS = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1160px;padding:16px;color:#222}
h1{margin:0 0 4px}h2{margin:0 0 8px;font-size:20px}h2 small{font-weight:normal;color:#666;font-size:13px}
.explain{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:10px 14px;margin:12px 0}
.scenario,.pair{border-top:2px solid #ddd;padding:16px 0 8px}
td.worse{background:#ffebe9}td.better{background:#dafbe1}.reason-inline{color:#9a6700}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;color:#fff;vertical-align:middle}
.badge.pass{background:#2da44e}.badge.fail{background:#cf222e}.badge.unsupported{background:#8c959f}.badge.error{background:#9a6700}
.reason{background:#fff8c5;border-left:4px solid #d4a72c;padding:6px 10px;white-space:pre-wrap}
.numbers{display:flex;flex-wrap:wrap;gap:8px 24px;margin:8px 0}.numbers div{min-width:120px}.numbers dt{color:#666;font-size:12px}.numbers dd{margin:0;font-weight:600}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}th:first-child,td:first-child,.expectations td{text-align:left}
tr.bad td{background:#ffebe9}tr.ok td:first-child{color:#2da44e}tr.bad td:first-child{color:#cf222e}
figure{margin:8px 0}figcaption{color:#555;font-size:12px}
svg text{font-size:11px;fill:#333}.tick{fill:#555}.axis-label{font-size:12px}.grid{stroke:#eee}.lane-sep{stroke:#f0f0f0}
.t0{stroke:#333;stroke-dasharray:4 3}.t0-label,.downtime-label{font-size:11px;font-weight:600}
.downtime{fill:#cf222e;fill-opacity:.12;stroke:#cf222e;stroke-opacity:.5}.downtime-label{fill:#cf222e}
.event{stroke:#555}.phase{stroke:none}.phase-label{font-size:10px}
.pkt.ok{fill:#8c959f}.pkt.delayed{fill:#d4a72c}.pkt.lost{fill:#cf222e}.pkt.in-flight{fill:#0969da}.pkt.reordered{stroke:#bf3989;stroke-width:1.5}
.outage{fill:#cf222e;fill-opacity:.6}.announce{fill:#8250df}.fdb{fill:#1a7f37}.note{fill:#666;color:#666;font-style:italic}
body.affected-only .pkt.ok:not(.reordered){display:none}
#status{position:fixed;right:12px;bottom:12px;max-width:480px;background:#fff;border:1px solid #bbb;border-radius:4px;padding:4px 8px;font-size:12px;color:#333;box-shadow:0 1px 4px #0002}#status:empty{display:none}`;

// Minimal JS: hovering a mark shows its details in a status line (its <title>, or a single
// packet's data attributes); a checkbox hides ok marks.
const SCRIPT = `document.getElementById('affected-only').addEventListener('change',function(e){document.body.classList.toggle('affected-only',e.target.checked)});
function describe(t){var ti=t.querySelector('title');if(ti){return ti.textContent}var d=t.dataset;if(d.seq===undefined){return ''}
return 'seq '+d.seq+' '+d.state+(d.reordered!==undefined?', reordered':'')+', at '+d.t+' ms'+(d.rtt!==undefined?', rtt '+d.rtt+' ms':'')}
document.addEventListener('mouseover',function(e){var t=e.target.closest&&e.target.closest('[data-seq],[data-event],.announce,.fdb,.downtime');if(t){document.getElementById('status').textContent=describe(t)}});`;

/** A whole self-contained page: head with the styles, `body`, the hover status line and its script. */
export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
${body}
<div id="status" aria-live="polite"></div>
<script>${SCRIPT}</script>
</body></html>
`;
}

export function renderHtmlReport(results: ScenarioResult[], opts: HtmlReportOptions = {}): string {
  const s = summarize(results);
  const title = opts.title ?? 'switchover report';
  const nav = results.map((r) => `<li><a href="#s-${esc(slug(r.scenario))}-${esc(r.backend)}">${esc(r.scenario)}</a> <span class="badge ${esc(r.verdict)}">${esc(r.verdict)}</span> ${esc(r.backend)}</li>`).join('');
  return htmlPage(title, `<header><h1>${esc(title)}</h1>
<p data-summary data-total="${s.total}" data-pass="${s.pass}" data-fail="${s.fail}" data-unsupported="${s.unsupported}" data-error="${s.error}">Generated ${esc((opts.now ?? new Date()).toISOString())}: ${s.total} scenarios, ${s.pass} pass, ${s.fail} fail, ${s.unsupported} unsupported, ${s.error} error.</p></header>
<div class="explain">
<p><b>What this shows.</b> Each scenario live-migrates a VM while traffic flows to it and checks how many packets the switchover cost.
The <b>downtime</b> is the time between the source VM stopping and the destination running (from QMP).
Packets sent to the VM in that window are <b>lost</b> unless netpass carries them over, in which case they arrive late (<b>delayed</b>).
A packet is delayed when its round trip exceeds the flow's baseline (median of its first 20 round trips) by more than max(5 ms, 5 × baseline).
Packets still unanswered when the capture stopped are <b>in flight</b>, not lost. After the switchover the destination <b>announces</b> the guest's MAC (RARP, gratuitous ARP) so switches learn its new port.</p>
<p>Every lost packet gets a <b>cause</b> from the captures on the client and on both TAPs, the kernel's drop counters and the VMs' states: <i>stopped-source</i> (it reached the source after it stopped: the switchover loss itself), <i>tap-queue</i> (dropped at a TAP's queue while its VM was paused, or running too slowly to read it), <i>host-arp-queue</i>, <i>veth-queue</i>, <i>reply-lost</i>, <i>not-on-wire</i>, or <i>unknown</i>. When the harness or the machine was the bottleneck (the generator short of its rate, drops at its sockets or in tcpdump, a VM too slow while running, an engine stall), the verdict is <b>error</b>: such a run says nothing about the migration.</p>
${LEGEND}
</div>
<nav><ul>${nav}</ul></nav>
${results.map((r, i) => scenarioSection(r, i, opts)).join('\n')}`);
}

export function writeHtmlReport(file: string, results: ScenarioResult[], opts: HtmlReportOptions = {}): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, renderHtmlReport(results, { reportFile: file, ...opts }));
}
