// Bench section "rate-ceiling": how much traffic a verdict can be trusted at. For each of
// netpass-bridge-udp, netpass-routed-udp, local-ping and local-4-queues on the engine, with a
// UDP stream to the guest plus a 1 ms ping, the highest UDP rate at which 5 runs of 5 lose
// nothing; and at that rate the engine's longest event-loop stall (query-migrate's
// x-switchover-max-stall-ms, any phase, either VM) and the generator's CPU per 10,000
// datagrams/s. Rates climb in steps until a rate loses packets or ends in `error` (the
// harness could not carry it), so the ceiling is the last rate that held.
import { engineBackend } from '../vm/engine.js';
import { findScenarios } from '../scenario/catalogue.js';
import type { Scenario, ScenarioResult, TrafficSpec } from '../scenario/types.js';
import { generatorCpuPer10k, networkUnavailable, round, runScenarioTimes, verdicts } from './measure.js';
import { notAvailable, type BenchContext, type BenchRow, type BenchSection } from './section.js';

const SECTION = 'rate-ceiling';
const SCENARIOS = ['netpass-bridge-udp', 'netpass-routed-udp', 'local-ping', 'local-4-queues'];
const RATES = [10_000, 15_000, 20_000, 25_000, 30_000];
const RUNS = 5;
/** The ceilings issue 12 measured before the NIC drained its queues and injection was sliced. */
const BEFORE: Record<string, string> = {
  'netpass-bridge-udp': '7,500', 'netpass-routed-udp': '2,500', 'local-ping': '5,000', 'local-4-queues': 'under 10,000',
};

/** The scenario at `rate` UDP datagrams/s to the guest, with a 1 ms ping beside it. */
export function atRate(s: Scenario, rate: number): Scenario {
  const flows: TrafficSpec[] = s.traffic.flows.map((f) => (f.kind === 'udp' ? { ...f, rate } : f));
  if (!flows.some((f) => f.kind === 'ping')) flows.push({ kind: 'ping', intervalMs: 1 });
  return { ...s, traffic: { ...s.traffic, flows } };
}

const clean = (r: ScenarioResult): boolean => r.verdict === 'pass' && r.traffic.reduce((n, f) => n + f.lost, 0) === 0;

/** Longest engine stall of a run, ms, over both VMs and every phase. */
const stallMs = (r: ScenarioResult): number => Math.max(0, ...(r.health?.engineStalls ?? []).map((s) => s.maxMs));

/** Generator CPU per 10,000 datagrams/s (measure.ts), of the run's first generator that sent. */
function generatorCpu(r: ScenarioResult): number | undefined {
  const g = r.health?.generators.find((x) => x.achievedRate > 0 && x.sendMs > 0);
  return g ? generatorCpuPer10k(g) : undefined;
}

export const rateCeilingSection: BenchSection = {
  name: SECTION,
  what: `highest UDP rate (+1 ms ping) with 0 lost in ${RUNS}/${RUNS} runs, engine stall, generator CPU per 10k/s`,
  async run(_ctx: BenchContext): Promise<BenchRow[]> {
    const cannot = networkUnavailable();
    if (cannot) return [notAvailable(SECTION, 'rate ceiling', cannot)];
    const scenarios = await findScenarios(SCENARIOS);
    await engineBackend.probe();
    const rows: BenchRow[] = [];
    for (const s of scenarios) {
      let ceiling: number | null = null;
      let held: ScenarioResult[] = [];
      let broke = '';
      for (const rate of RATES) {
        const runs = (await runScenarioTimes(atRate(s, rate), engineBackend, RUNS)).map((x) => x.result);
        if (!runs.every(clean)) { broke = `at ${rate.toLocaleString('en-US')}/s: ${verdicts(runs)}`; break; }
        ceiling = rate;
        held = runs;
      }
      const cpu = held.map(generatorCpu).filter((v): v is number => v !== undefined);
      rows.push(
        {
          section: SECTION, measure: `${s.name}: highest rate, 0 lost in ${RUNS}/${RUNS}`, value: ceiling, unit: 'datagrams/s',
          note: `before: ${BEFORE[s.name] ?? '?'}; target 20,000; ${broke || `held up to ${RATES.at(-1)!.toLocaleString('en-US')}/s, the top step`}`,
        },
        { section: SECTION, measure: `${s.name}: longest engine stall at that rate`, value: held.length ? round(Math.max(...held.map(stallMs))) : null, unit: 'ms' },
        { section: SECTION, measure: `${s.name}: generator CPU per 10,000/s`, value: cpu.length ? round(Math.max(...cpu)) : null, unit: 'ms CPU/s' },
      );
    }
    return rows;
  },
};
