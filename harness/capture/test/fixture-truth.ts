// The recorded fixtures (fixtures/pcaps, fixtures/make-pcaps.ts) and the check that an analysis
// gives their ground truth, shared by the analyzer, capture-point and corpus tests.
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeCaptures, type AnalyzeOptions, type CaptureFile, type PcapAnalysis, type PcapFlow } from '../analyzer.js';
import { readSenderLog } from '../sender-log.js';
import type { FixtureTruth } from '../../../fixtures/make-pcaps.js';

export const FIXTURES = fileURLToPath(new URL('../../../../fixtures/pcaps/', import.meta.url));

export function loadTruths(): FixtureTruth[] {
  return readdirSync(FIXTURES).filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as FixtureTruth);
}

export const truthNamed = (json: string): FixtureTruth => JSON.parse(readFileSync(join(FIXTURES, json), 'utf8')) as FixtureTruth;

/** Analyse `files` (default the fixture's own capture) with the fixture's sender log, if it has one. */
export async function analyzeFixture(truth: FixtureTruth, files?: CaptureFile[], opts: AnalyzeOptions = {}): Promise<PcapAnalysis> {
  const senderLogs = truth.senderLog ? [await readSenderLog(join(FIXTURES, truth.senderLog))] : [];
  return analyzeCaptures(files ?? [{ path: join(FIXTURES, truth.pcap) }], { senderLogs, ...opts });
}

/** The analysis has the fixture's one flow, with the ground truth's figures; returns that flow. */
export function assertTruth(a: PcapAnalysis, truth: FixtureTruth, what = truth.pcap): PcapFlow {
  const flows = a.flows.filter((f) => f.kind === truth.kind && f.mode === truth.mode);
  assert.is(flows.length, 1, `${what}: flows ${a.flows.map((f) => f.flow).join('; ')}`);
  const f = flows[0]!;
  assert.is(f.sent, truth.sent, `${what}: sent`);
  assert.equal(f.lostSeqs, truth.lostSeqs, `${what}: lost`);
  assert.equal(f.delayedSeqs, truth.delayedSeqs, `${what}: delayed`);
  assert.equal(f.inFlightSeqs, truth.inFlightSeqs, `${what}: in flight`);
  assert.is(f.reordered, truth.reordered, `${what}: reordered`);
  assert.equal(f.notOnWireSeqs, truth.notOnWireSeqs ?? [], `${what}: not on the wire`);
  if (truth.lastSeen) assert.equal(f.lastSeen?.map((g) => ({ where: g.where, as: g.as, seqs: g.seqs })), truth.lastSeen, `${what}: last seen`);
  assert.is(f.lost, truth.lostSeqs.length);
  assert.is(f.received + f.lost + f.inFlight, f.sent);
  return f;
}
