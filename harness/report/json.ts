// The `--json` file: { summary, results }, where results holds one ScenarioResult per
// scenario (the DESIGN.md contract: scenario, backend, verdict, migration.*, traffic[].*,
// netpass.*), and summary the verdict counts and the exit code the run ends with.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { summarize, type RunSummary } from './table.js';
import type { ScenarioResult } from '../scenario/types.js';

export interface JsonReport {
  /** Bumped when a field changes meaning; additions keep the version. */
  format: 'switchover-results/1';
  generatedAt: string;
  summary: RunSummary & { exitCode: 0 | 1 | 2 };
  results: ScenarioResult[];
}

/** DESIGN.md exit codes: 2 on any error, else 1 on any failed expectation, else 0. */
export function exitCodeFor(results: ScenarioResult[]): 0 | 1 | 2 {
  if (results.some((r) => r.verdict === 'error')) return 2;
  if (results.some((r) => r.verdict === 'fail')) return 1;
  return 0;
}

export function buildJsonReport(results: ScenarioResult[], opts: { packets?: boolean; now?: Date } = {}): JsonReport {
  const keepPackets = opts.packets ?? true;
  return {
    format: 'switchover-results/1',
    generatedAt: (opts.now ?? new Date()).toISOString(),
    summary: { ...summarize(results), exitCode: exitCodeFor(results) },
    results: keepPackets ? results : results.map((r) => ({
      ...r, traffic: r.traffic.map(({ packets: _packets, ...f }) => f),
    })),
  };
}

/** Write the report, creating the directory; per-packet marks are kept unless packets=false. */
export function writeJsonReport(file: string, results: ScenarioResult[], opts: { packets?: boolean } = {}): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(buildJsonReport(results, opts), null, 2)}\n`);
}
