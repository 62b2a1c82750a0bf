// The bench program end to end on a small capture: the analyzer section produces its rows,
// finds the planted loss and delay, writes the JSON, and unknown sections are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type BenchReport } from '../main.js';

const tmp = mkdtempSync(join(tmpdir(), 'swbt-'));

test('bench --only analyzer on 20,000 packets: rows, ratio and correctness in the JSON, for pcap and pcapng', async () => {
  const file = join(tmp, 'bench.json');
  assert.is(await main(['--only', 'analyzer', '--packets', '20000', '--json', file]), 0);
  const r = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  assert.ok(r.machine.cpus > 0 && r.date.length > 0);
  assert.ok(r.rows.every((x) => x.section === 'analyzer'));
  for (const format of ['pcap', 'pcapng']) {
    const vs = r.rows.find((x) => x.measure === `analyzer, whole process (${format})`)!;
    assert.is(vs.peer?.name, 'tcpdump -nn -r');
    assert.ok(vs.value! > 0 && vs.peer!.value! > 0 && vs.ratio! > 0);
    assert.is(r.rows.find((x) => x.measure === `analyzer finds the planted loss and delay (${format})`)!.value, 1, format);
    assert.ok(r.rows.find((x) => x.measure === `analyzer peak RSS (VmHWM, ${format})`)!.value! > 0);
  }
});

test('bench refuses an unknown section and a bad --packets', async () => {
  assert.is(await main(['--only', 'nope']), 2);
  assert.is(await main(['--packets', '5']), 2);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
