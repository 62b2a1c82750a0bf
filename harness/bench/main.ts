// `npm run bench`: runs the bench sections in order, prints one table on stdout and writes
// the rows with the date and the machine's size to out/bench.json (or --json FILE).
//
//   node dist/harness/bench/main.js [--only SECTION,...] [--packets N] [--json FILE]
//
// A section is a module under harness/bench/ exporting a BenchSection (section.ts); add it
// to SECTIONS below. Sections whose dependency is missing report "n/a: <reason>" rows; a
// section that throws becomes an "error: ..." row, and the bench carries on.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderTable } from '../report/table.js';
import { analyzerSection } from './analyzer.js';
import { downtimeSection } from './downtime.js';
import { engineEchoSection } from './engine-echo.js';
import { fidelitySection } from './fidelity.js';
import { generatorCpuSection } from './generator-cpu.js';
import { migrationThroughputSection } from './migration-throughput.js';
import { netpassSection } from './netpass.js';
import { rateCeilingSection } from './rate-ceiling.js';
import { scaleSection } from './scale.js';
import { scenarioWallSection } from './scenario-wall.js';
import { type BenchRow, type BenchSection } from './section.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

export const SECTIONS: BenchSection[] = [
  analyzerSection,
  engineEchoSection,
  generatorCpuSection,
  migrationThroughputSection,
  scenarioWallSection,
  downtimeSection,
  scaleSection,
  rateCeilingSection,
  fidelitySection,
  netpassSection,
];

export interface BenchReport {
  date: string;
  machine: { cpus: number; cpuModel: string; memGiB: number; kernel: string; node: string };
  rows: BenchRow[];
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(v);
}

export function renderBenchTable(rows: BenchRow[]): string {
  return renderTable(
    ['section', 'measure', 'value', 'unit', 'peer', 'peer value', 'ratio', 'note'],
    rows.map((r) => [
      r.section, r.measure, fmt(r.value), r.unit, r.peer?.name ?? '', r.peer ? fmt(r.peer.value) : '',
      r.ratio === undefined ? '' : `${r.ratio}x`, r.note ?? '',
    ]),
    new Set([0, 1, 3, 4, 7]),
  );
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { only: { type: 'string' }, packets: { type: 'string' }, json: { type: 'string' } },
  });
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only?.filter((n) => !SECTIONS.some((s) => s.name === n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`bench: unknown section ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const packets = Number(values.packets ?? 1_000_000);
  if (!Number.isInteger(packets) || packets < 1000) {
    process.stderr.write(`bench: --packets "${values.packets}" must be an integer >= 1000\n`);
    return 2;
  }
  const jsonFile = values.json ?? join(root, 'out', 'bench.json');
  const tmpDir = mkdtempSync(join(tmpdir(), 'swbench-'));
  const rows: BenchRow[] = [];
  try {
    for (const s of SECTIONS.filter((x) => !only || only.includes(x.name))) {
      process.stderr.write(`bench: ${s.name}: ${s.what}\n`);
      try {
        rows.push(...(await s.run({ root, tmpDir, packets })));
      } catch (e) {
        rows.push({ section: s.name, measure: s.what, value: null, unit: '', note: `error: ${(e as Error).message}` });
      }
    }
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(), node: process.version,
    },
    rows,
  };
  mkdirSync(dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  const m = report.machine;
  process.stdout.write(`switchover bench ${report.date} on ${m.cpus} x ${m.cpuModel}, ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}\n`);
  process.stdout.write(`${renderBenchTable(rows)}\n(JSON: ${jsonFile})\n`);
  return rows.some((r) => r.note?.startsWith('error:')) ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  });
}
