// Bench section "downtime": query-migrate `downtime` on the engine with netpass on
// (netpass-bridge-ping) and off (baseline-bridge-ping) at three guest dirty rates, 3 runs
// each, median. Both scenarios are the same run apart from the netpass capability; every run
// gets `--set dirty-rate=R --set param.max-bandwidth=0`. Unlimited bandwidth because at the
// default 128 MiB/s (32,768 pages/s) a guest dirtying 100,000 pages/s never converges, as
// it would not on QEMU: the migration would stay `active` until the runner's timeout.
// Downtime runs from the source's stop to VM_STARTED on the return path (engine/migration/STREAM.md).
import { engineBackend } from '../vm/engine.js';
import { findScenarios } from '../scenario/catalogue.js';
import { applyOverrides } from '../scenario/scenario.js';
import type { ScenarioResult } from '../scenario/types.js';
import { networkUnavailable, ran, runScenarioTimes, verdicts } from './measure.js';
import { median } from '../../lib/stats.js';
import { notAvailable, type BenchContext, type BenchRow, type BenchSection } from './section.js';

const SECTION = 'downtime';
const RATES = [1_000, 20_000, 100_000];
const RUNS = 3;

interface Series { downtimes: number[]; lost: number[]; forwarded: number[]; results: ScenarioResult[] }

async function series(name: string, rate: number): Promise<Series> {
  const [s] = await findScenarios([name]);
  const runs = await runScenarioTimes(applyOverrides(s!, [`dirty-rate=${rate}`, 'param.max-bandwidth=0']), engineBackend, RUNS);
  const results = runs.map((r) => r.result);
  const done = results.filter((r) => ran(r) && r.migration.status === 'completed');
  return {
    downtimes: done.map((r) => r.migration.downtimeMs),
    lost: done.map((r) => r.traffic.reduce((n, f) => n + f.lost, 0)),
    forwarded: done.map((r) => r.netpass.forwarded),
    results,
  };
}

const list = (v: readonly number[]): string => (v.length ? v.join('/') : '-');

export const downtimeSection: BenchSection = {
  name: SECTION,
  what: `engine downtime, netpass on vs off, at ${RATES.map((r) => r.toLocaleString('en-US')).join(' / ')} dirty pages/s (median of ${RUNS})`,
  async run(_ctx: BenchContext): Promise<BenchRow[]> {
    const cannot = networkUnavailable();
    if (cannot) return [notAvailable(SECTION, 'downtime', cannot)];
    const rows: BenchRow[] = [];
    for (const rate of RATES) {
      const on = await series('netpass-bridge-ping', rate);
      const off = await series('baseline-bridge-ping', rate);
      const onMs = on.downtimes.length ? median(on.downtimes) : null;
      const offMs = off.downtimes.length ? median(off.downtimes) : null;
      rows.push({
        section: SECTION, measure: `downtime at ${rate.toLocaleString('en-US')} pages/s, netpass on`, value: onMs, unit: 'ms',
        peer: { name: 'netpass off', value: offMs },
        ...(onMs && offMs ? { ratio: Math.round((offMs / onMs) * 100) / 100 } : {}),
        note: `ratio = off / on; runs on ${list(on.downtimes)} ms, off ${list(off.downtimes)} ms; lost on ${list(on.lost)}, off ${list(off.lost)}; `
          + `netpass forwarded ${list(on.forwarded)}; verdicts on: ${verdicts(on.results)}; off: ${verdicts(off.results)}`,
      });
    }
    return rows;
  },
};
