// A ScenarioResult with plausible figures, for tests of code that only reads results.
import type { FlowResult, ScenarioResult } from '../../scenario/types.js';

export interface FakeResultOptions {
  scenario?: string; backend?: ScenarioResult['backend']; verdict?: ScenarioResult['verdict'];
  lost?: number; outageMs?: number; maxGapMs?: number; downtimeMs?: number;
  transferredBytes?: number; totalTimeMs?: number;
}

export function fakeResult(o: FakeResultOptions = {}): ScenarioResult {
  const lost = o.lost ?? 0;
  const flow: FlowResult = {
    kind: 'ping', flow: 'icmp 192.168.100.1>192.168.100.2 id=1', sent: 2000, received: 2000 - lost, lost,
    lostSeqs: Array.from({ length: lost }, (_, i) => 700 + i), delayed: 0, maxAddedLatencyMs: 0, duplicates: 0,
    reordered: 0, outageMs: o.outageMs ?? 0, maxGapMs: o.maxGapMs ?? 1, inFlight: 0, baselineRttMs: 0.1,
  };
  return {
    scenario: o.scenario ?? 'netpass-bridge-ping', backend: o.backend ?? 'engine', verdict: o.verdict ?? 'pass',
    accelerator: 'engine', startedAt: '2026-11-21T00:00:00.000Z', wallMs: 1400,
    migration: { status: 'completed', downtimeMs: o.downtimeMs ?? 30, totalTimeMs: o.totalTimeMs ?? 200, transferredBytes: o.transferredBytes ?? 20_000_000 },
    traffic: [flow], netpass: { cached: 30, forwarded: 30, dropped: 0 }, announces: [], macFlapping: false,
    fdbMoves: [], timeline: [], expectations: [],
  };
}
