// `--shard K/N`: split the selected scenarios across N machines, as Playwright's --shard does.
// Deterministic and independent of the order scenarios were named in: sort by name, then deal
// round-robin, so shard sizes differ by at most one and every machine of a CI matrix computes
// the same split. The union of shards 1..N is the whole selection; shards are disjoint.
// CI templates for GitHub Actions and GitLab: docs/ci/ (harness/SHARDING.md).
import { InputError } from './schema.js';

export interface Shard {
  /** 1-based, as written on the command line. */
  index: number;
  total: number;
}

/** Parses `K/N`. Errors read `--shard 3/2: K must be between 1 and N`. */
export function parseShard(spec: string): Shard {
  const where = `--shard ${spec}`;
  const m = /^\s*(\d{1,6})\s*\/\s*(\d{1,6})\s*$/.exec(spec);
  if (!m) throw new InputError(where, '', 'expected K/N with whole numbers, e.g. --shard 1/4');
  const index = Number(m[1]);
  const total = Number(m[2]);
  if (total < 1) throw new InputError(where, '', 'N must be at least 1');
  if (index < 1 || index > total) throw new InputError(where, '', 'K must be between 1 and N');
  return { index, total };
}

/** The items of shard K of N. A shard can be empty when N exceeds the number of items. */
export function shardScenarios<T extends { name: string }>(items: readonly T[], shard: Shard): T[] {
  const sorted = [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sorted.filter((_, i) => i % shard.total === shard.index - 1);
}
