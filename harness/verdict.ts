// Expectations -> verdict. Each expectation becomes one line (name, expected, actual, ok)
// so the table, JUnit and HTML report show why a scenario passed or failed.
import type { Expectations, ScenarioResult } from './types.js';

type Check = ScenarioResult['expectations'][number];

function line(name: string, expected: string, actual: number | string, ok: boolean): Check {
  return { name, expected, actual: String(actual), ok };
}

/** Sum of a field over flows. */
const total = (r: ScenarioResult, f: (x: ScenarioResult['traffic'][number]) => number): number =>
  r.traffic.reduce((s, x) => s + f(x), 0);

export function checkExpectations(r: ScenarioResult, e: Expectations): Check[] {
  const checks: Check[] = [];
  const status = e.migrationStatus ?? 'completed';
  checks.push(line('migration status', status, r.migration.status, r.migration.status === status));
  const lost = total(r, (f) => f.lost);
  if (e.lost !== undefined) checks.push(line('lost', `<= ${e.lost}`, lost, lost <= e.lost));
  if (e.minLost !== undefined) checks.push(line('lost', `>= ${e.minLost}`, lost, lost >= e.minLost));
  if (e.maxOutageMs !== undefined) {
    const outage = Math.max(0, ...r.traffic.map((f) => f.outageMs));
    checks.push(line('outage ms', `<= ${e.maxOutageMs}`, outage.toFixed(1), outage <= e.maxOutageMs));
  }
  if (e.maxAddedLatencyMs !== undefined) {
    const added = Math.max(0, ...r.traffic.map((f) => f.maxAddedLatencyMs));
    checks.push(line('added latency ms', `<= ${e.maxAddedLatencyMs}`, added.toFixed(1), added <= e.maxAddedLatencyMs));
  }
  if (e.duplicates !== undefined) {
    const d = total(r, (f) => f.duplicates);
    checks.push(line('duplicates', `<= ${e.duplicates}`, d, d <= e.duplicates));
  }
  if (e.reordered !== undefined) {
    const d = total(r, (f) => f.reordered);
    checks.push(line('reordered', `<= ${e.reordered}`, d, d <= e.reordered));
  }
  if (e.minAnnounces !== undefined) {
    const n = r.announces.filter((a) => a.kind === 'rarp').length;
    checks.push(line('RARP announces', `>= ${e.minAnnounces}`, n, n >= e.minAnnounces));
  }
  if (e.minPasses !== undefined) {
    const p = r.migration.passes ?? 0;
    checks.push(line('precopy passes', `>= ${e.minPasses}`, p, p >= e.minPasses));
  }
  // "0 lost" means on every packet: the guest's own sequence counters must agree with the pcap.
  if (e.lost === 0 && r.guestCounters?.length) {
    const missing = r.guestCounters.reduce((s, c) => s + c.missing, 0);
    checks.push(line('guest sink missing', '0', missing, missing === 0));
  }
  return checks;
}

export function verdictOf(checks: Check[]): 'pass' | 'fail' {
  return checks.every((c) => c.ok) ? 'pass' : 'fail';
}
