// ScenarioResults built from the recorded fixture pcaps through the real analyzer, for the
// report tests. The migration timeline is laid over the capture's own outage so that the
// STOP..RESUME window sits where the packets were lost, as it would in a real run.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzePcap } from '../../capture/analyzer.js';
import type { ScenarioResult } from '../../scenario/types.js';

export const fixturesDir = fileURLToPath(new URL('../../../../fixtures/pcaps/', import.meta.url));

/** One result per pcap: `fail` with expectation lost=0 when the capture shows loss. */
export async function resultFromFixture(pcap: string, scenario: string): Promise<ScenarioResult> {
  const file = join(fixturesDir, pcap);
  const first = await analyzePcap(file);
  const affected = first.flows.find((f) => f.outageStartMs !== null);
  // t = 0 (migrate) 400 ms before the outage; STOP at its start, RESUME at its end.
  const t0Micros = first.t0Micros + ((affected?.outageStartMs ?? 500) - 400) * 1000;
  const a = await analyzePcap(file, { t0Micros });
  const f = a.flows.find((x) => x.outageStartMs !== null) ?? a.flows[0]!;
  const stop = f.outageStartMs ?? 400;
  const resume = f.outageEndMs ?? 420;
  const lost = a.flows.reduce((s, x) => s + x.lost, 0);
  return {
    scenario,
    backend: 'engine',
    verdict: lost === 0 ? 'pass' : 'fail',
    ...(lost ? { reason: `lost ${lost} packets; expected none` } : {}),
    accelerator: 'engine',
    startedAt: new Date(a.t0Micros / 1000).toISOString(),
    wallMs: 4200,
    migration: { status: 'completed', downtimeMs: Math.round(resume - stop), totalTimeMs: Math.round(resume + 20), transferredBytes: 64 << 20, passes: 3 },
    traffic: a.flows,
    netpass: { cached: 0, forwarded: 0, dropped: 0 },
    announces: [0, 1, 2, 3, 4].map((k) => ({ t: resume + 50 + k * 100, kind: 'rarp' as const, iface: 'tap1', mac: '52:54:00:12:34:56' })),
    macFlapping: false,
    fdbMoves: [{ t: resume + 51, mac: '52:54:00:12:34:56', port: 'tap1' }],
    timeline: [
      { t: 0, source: 'harness', what: 'migrate' },
      { t: 1, source: 'src', what: 'MIGRATION setup' },
      { t: 5, source: 'src', what: 'MIGRATION active' },
      { t: stop, source: 'src', what: 'STOP' },
      { t: stop + 1, source: 'src', what: 'MIGRATION device' },
      { t: resume - 2, source: 'src', what: 'MIGRATION completed' },
      { t: -50, source: 'dst', what: 'MIGRATION setup' },
      { t: resume, source: 'dst', what: 'RESUME' },
    ],
    expectations: [
      { name: 'lost', expected: '0', actual: String(lost), ok: lost === 0 },
      { name: 'minAnnounces', expected: '>= 1', actual: '5', ok: true },
    ],
    pcaps: [file],
  };
}
