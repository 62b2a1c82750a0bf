// JUnit XML for CI (GitHub Actions, GitLab, Jenkins): one <testcase> per scenario.
// fail -> <failure>, error -> <error>, unsupported -> <skipped> (a missing feature is not a
// pass), each with the reason and the expectation lines; the numbers go in <properties>
// so a CI dashboard can chart them. Schema: the de-facto Ant/Surefire JUnit format.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatSeqs, summarize } from './table.js';
import type { ScenarioResult } from '../scenario/types.js';

// XML 1.0 forbids most control characters even when escaped.
// eslint-disable-next-line no-control-regex
const INVALID_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

export function xmlEscape(s: string): string {
  return s.replace(INVALID_XML, '\ufffd').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const attr = (o: Record<string, string | number>): string =>
  Object.entries(o).map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`).join('');

function properties(r: ScenarioResult): Array<[string, string | number]> {
  const p: Array<[string, string | number]> = [
    ['verdict', r.verdict],
    ['migration.status', r.migration.status],
    ['migration.downtimeMs', r.migration.downtimeMs],
    ['migration.totalTimeMs', r.migration.totalTimeMs],
    ['migration.transferredBytes', r.migration.transferredBytes],
    ['netpass.cached', r.netpass.cached],
    ['netpass.forwarded', r.netpass.forwarded],
    ['netpass.dropped', r.netpass.dropped],
    ['announces', r.announces.length],
    ['macFlapping', String(r.macFlapping)],
  ];
  if (r.accelerator) p.push(['accelerator', r.accelerator]);
  r.traffic.forEach((f, i) => {
    for (const k of ['sent', 'received', 'lost', 'delayed', 'duplicates', 'reordered', 'inFlight', 'outageMs', 'maxGapMs', 'maxAddedLatencyMs'] as const) {
      p.push([`traffic.${i}.${k}`, f[k]]);
    }
    p.push([`traffic.${i}.flow`, f.flow]);
  });
  return p;
}

function detail(r: ScenarioResult): string {
  const lines = r.expectations.map((e) => `${e.ok ? 'ok  ' : 'FAIL'} ${e.name}: expected ${e.expected}, got ${e.actual}`);
  for (const f of r.traffic) {
    lines.push(`${f.flow}: sent ${f.sent}, lost ${f.lost} [${formatSeqs(f.lostSeqs)}], delayed ${f.delayed}, outage ${f.outageMs} ms, in flight ${f.inFlight}`);
  }
  return lines.join('\n');
}

export function junitXml(results: ScenarioResult[], suiteName = 'switchover'): string {
  const s = summarize(results);
  const time = results.reduce((t, r) => t + r.wallMs, 0) / 1000;
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const counts = { tests: s.total, failures: s.fail, errors: s.error, skipped: s.unsupported, time: time.toFixed(3) };
  out.push(`<testsuites${attr({ name: suiteName, ...counts })}>`);
  out.push(`  <testsuite${attr({ name: suiteName, ...counts, timestamp: results[0]?.startedAt ?? new Date().toISOString() })}>`);
  for (const r of results) {
    out.push(`    <testcase${attr({ name: r.scenario, classname: `switchover.${r.backend}`, time: (r.wallMs / 1000).toFixed(3) })}>`);
    out.push('      <properties>');
    for (const [k, v] of properties(r)) out.push(`        <property${attr({ name: k, value: v })}/>`);
    out.push('      </properties>');
    const failed = r.expectations.filter((e) => !e.ok).map((e) => `${e.name}: expected ${e.expected}, got ${e.actual}`);
    const message = r.reason ?? failed.join('; ');
    if (r.verdict === 'fail') out.push(`      <failure${attr({ message, type: 'expectation' })}>${xmlEscape(detail(r))}</failure>`);
    else if (r.verdict === 'error') out.push(`      <error${attr({ message, type: 'error' })}>${xmlEscape(detail(r))}</error>`);
    else if (r.verdict === 'unsupported') out.push(`      <skipped${attr({ message: `unsupported: ${r.reason ?? 'backend lacks a required feature'}` })}/>`);
    out.push(`      <system-out>${xmlEscape(detail(r))}</system-out>`);
    out.push('    </testcase>');
  }
  out.push('  </testsuite>', '</testsuites>', '');
  return out.join('\n');
}

export function writeJunitReport(file: string, results: ScenarioResult[], suiteName?: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, junitXml(results, suiteName));
}
