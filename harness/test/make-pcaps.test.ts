// The fixture recorder end to end (root: netns, veth, nftables, tcpdump): record two
// captures afresh and check the analyzer against the truth the traffic tools reported.
// Also checks nothing of the run is left behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { makePcaps, type FixtureTruth } from '../../fixtures/make-pcaps.js';
import { analyzePcap } from '../pcap-analyzer.js';

const tmp = mkdtempSync(join(tmpdir(), 'swmk-'));

if (!requirePrivilege('fixture recording (netns, nftables, tcpdump)')) {
  test.skip('record fixtures afresh: needs root');
} else {
  test('recorded afresh, a drop window and a one-way stream match their ground truth', async () => {
    const made = await makePcaps(tmp, ['ping-drop-window.pcap', 'udp-oneway-drop.pcap']);
    assert.is(made.length, 2);
    for (const pcap of made) {
      const truth = JSON.parse(readFileSync(pcap.replace(/\.pcap$/, '.json'), 'utf8')) as FixtureTruth;
      assert.ok(truth.lostSeqs.length > 0, `${truth.pcap}: the window dropped something`);
      const f = (await analyzePcap(pcap)).flows.find((x) => x.kind === truth.kind && x.mode === truth.mode)!;
      assert.equal(f.lostSeqs, truth.lostSeqs, truth.pcap);
      assert.equal(f.inFlightSeqs, truth.inFlightSeqs, truth.pcap);
      assert.is(f.sent, truth.sent, truth.pcap);
    }
    assert.not.match(execFileSync('ip', ['netns', 'list']).toString(), /swfx-/);
  });
}

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
