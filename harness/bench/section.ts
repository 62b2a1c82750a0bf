// What a bench section is: a named group of measurements that returns rows. A section whose
// dependency is missing returns rows with value null and a note "n/a: <reason>" instead of
// failing the bench; main.ts turns a thrown error into such a row too.

export interface BenchRow {
  section: string;
  measure: string;
  value: number | null;
  unit: string;
  /** The side-by-side peer (tcpdump, real QEMU, ...) measured in the same run. */
  peer?: { name: string; value: number | null };
  /** value / peer.value, oriented so that > 1 means switchover is better/faster. */
  ratio?: number;
  note?: string;
}

export interface BenchContext {
  /** Repository root (holds dist/). */
  root: string;
  /** Scratch directory for generated inputs; removed after the run. */
  tmpDir: string;
  /** Packets in the generated analyzer pcap (default 1,000,000). */
  packets: number;
}

export interface BenchSection {
  name: string;
  /** One line: what the section measures and against what. */
  what: string;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

export function notAvailable(section: string, measure: string, reason: string): BenchRow {
  return { section, measure, value: null, unit: '', note: `n/a: ${reason}` };
}
