import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCatalogue } from '../catalogue.js';
import { parseShard, shardScenarios } from '../shard.js';

test('parseShard reads K/N and refuses the rest with a message naming the flag', () => {
  assert.equal(parseShard('1/4'), { index: 1, total: 4 });
  assert.equal(parseShard('4/4'), { index: 4, total: 4 });
  const cases: Array<[string, string]> = [
    ['3/2', '--shard 3/2: K must be between 1 and N'],
    ['0/2', '--shard 0/2: K must be between 1 and N'],
    ['1/0', '--shard 1/0: N must be at least 1'],
    ['1', '--shard 1: expected K/N with whole numbers, e.g. --shard 1/4'],
    ['a/b', '--shard a/b: expected K/N with whole numbers, e.g. --shard 1/4'],
    ['-1/2', '--shard -1/2: expected K/N with whole numbers, e.g. --shard 1/4'],
    ['1.5/2', '--shard 1.5/2: expected K/N with whole numbers, e.g. --shard 1/4'],
    ['', '--shard : expected K/N with whole numbers, e.g. --shard 1/4'],
  ];
  for (const [spec, message] of cases) {
    assert.throws(() => parseShard(spec), (e: Error) => e.message === message, spec);
  }
});

test('shards of the catalogue are disjoint, cover it, and differ in size by at most one', async () => {
  const all = await loadCatalogue();
  for (const total of [1, 2, 3, 4, 7, all.length, all.length + 3]) {
    const shards = Array.from({ length: total }, (_, i) => shardScenarios(all, { index: i + 1, total }).map((s) => s.name));
    const union = shards.flat();
    assert.is(union.length, all.length, `N=${total}: every scenario once`);
    assert.equal(new Set(union), new Set(all.map((s) => s.name)), `N=${total}: union is the catalogue`);
    const sizes = shards.map((s) => s.length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `N=${total}: sizes ${sizes}`);
  }
});

test('the split depends on names only, not on the order scenarios were given in', async () => {
  const all = await loadCatalogue();
  const reversed = [...all].reverse();
  const shuffled = [...all].sort((a, b) => (a.description < b.description ? -1 : 1));
  for (let k = 1; k <= 3; k++) {
    const a = shardScenarios(all, { index: k, total: 3 }).map((s) => s.name);
    assert.equal(shardScenarios(reversed, { index: k, total: 3 }).map((s) => s.name), a);
    assert.equal(shardScenarios(shuffled, { index: k, total: 3 }).map((s) => s.name), a);
  }
  // Pinned, so a change to the split (which would reshuffle every CI matrix) is deliberate.
  const names = ['e', 'a', 'd', 'c', 'b'].map((name) => ({ name }));
  assert.equal(shardScenarios(names, { index: 1, total: 2 }).map((s) => s.name), ['a', 'c', 'e']);
  assert.equal(shardScenarios(names, { index: 2, total: 2 }).map((s) => s.name), ['b', 'd']);
});

test.run();
