// A catalogue-sized result for the report size tests: `flows` UDP flows of `packets`
// datagrams each, 13,333 a second (16,000 over 1.2 s, as the big flows of `npm start`), a 10 ms
// switchover window that loses the even flows' datagrams and delays the odd flows' ones by
// 30 ms (so each is also reordered: the replies to datagrams sent after the window overtake
// it, as netpass's late deliveries are), and the last 50 of each flow in flight.
import type { FlowResult, ScenarioResult } from '../../scenario/types.js';
import { fakeResult } from './fake-result.js';

type Packet = NonNullable<FlowResult['packets']>[number];

export const WINDOW_MS = { from: 300, to: 310 };

export function bigResult(flows = 20, packets = 16_000, scenario = 'big'): ScenarioResult {
  const r = fakeResult({ scenario, verdict: 'fail', downtimeMs: WINDOW_MS.to - WINDOW_MS.from });
  r.timeline = [
    { t: 0, source: 'harness', what: 'migrate' },
    { t: WINDOW_MS.from, source: 'src', what: 'STOP' },
    { t: WINDOW_MS.to, source: 'dst', what: 'RESUME' },
  ];
  const interval = 0.075;
  r.traffic = Array.from({ length: flows }, (_, i): FlowResult & { mode: 'request-reply'; outageStartMs: number; outageEndMs: number } => {
    const list: Packet[] = [];
    for (let s = 0; s < packets; s++) {
      const t = Math.round((-400 + s * interval) * 1000) / 1000;
      if (s >= packets - 50) list.push({ seq: s, t, state: 'in-flight' });
      else if (t < WINDOW_MS.from || t >= WINDOW_MS.to) list.push({ seq: s, t, rttMs: 0.1, state: 'ok' });
      else if (i % 2 === 0) list.push({ seq: s, t, state: 'lost' });
      else list.push({ seq: s, t, rttMs: 30, state: 'delayed' });
    }
    const lostSeqs = list.filter((p) => p.state === 'lost').map((p) => p.seq);
    const delayed = list.filter((p) => p.state === 'delayed').length;
    return {
      kind: 'udp', mode: 'request-reply', flow: `udp 192.168.100.1:${40000 + i}>192.168.100.2:7`, sent: packets,
      received: packets - lostSeqs.length - 50, lost: lostSeqs.length, lostSeqs, delayed, maxAddedLatencyMs: delayed ? 29.9 : 0,
      duplicates: 0, reordered: delayed, outageMs: WINDOW_MS.to - WINDOW_MS.from, outageStartMs: WINDOW_MS.from, outageEndMs: WINDOW_MS.to,
      maxGapMs: 10, inFlight: 50, baselineRttMs: 0.1, packets: list,
    };
  });
  return r;
}
