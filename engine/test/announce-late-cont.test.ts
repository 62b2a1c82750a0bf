// The announce of a `-S` destination, on real networking, as QEMU does it: the timer starts at
// completion (process_incoming_migration_bh), the rounds due before `cont` wait in the NIC's
// queue (qemu_can_send_packet is false while stopped) and leave together at `cont`; the rest
// follow the schedule from completion. tcpdump on the destination's TAP sees what it wrote.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { waitStatus } from './qmp-steps.js';
import { withNet } from './testnet.js';

const privileged = requirePrivilege('engine announce tests');
const ptest = privileged ? test : test.skip;
const CONT_DELAY_MS = 400;

/** RARP send times (epoch ms) from `tcpdump -tt` lines. */
const rarpTimes = (out: string): number[] =>
  out.split('\n').filter((l) => /RARP|Reverse Request/i.test(l)).map((l) => Number(l.split(' ')[0]) * 1000);

ptest('a -S destination sends the rounds due before cont in one burst at cont, the rest on schedule', () => withNet(1, async (n) => {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', n.guestOn(n.tap0, { memMB: 32 }));
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { memMB: 32, incoming: uri, paused: true }));
  const dump = n.spawnInHost(['tcpdump', '-l', '-n', '-tt', '-i', n.tap1, '-Q', 'in', 'rarp']);
  let out = '', err = '';
  dump.stdout!.on('data', (d) => { out += d; });
  dump.stderr!.on('data', (d) => { err += d; });
  const deadline = Date.now() + 10_000;
  while (!/listening on/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(err, /listening on/, 'tcpdump started');

  await src.qmp.execute('migrate', { uri });
  await waitStatus(dst.qmp, ['completed'], deadline - Date.now(), 5);
  const completedAt = Date.now();
  await new Promise((r) => setTimeout(r, CONT_DELAY_MS));
  assert.equal(rarpTimes(out), [], 'nothing leaves a stopped destination');
  const contAt = Date.now();
  await dst.qmp.execute('cont');
  await new Promise((r) => setTimeout(r, 900));
  dump.kill('SIGINT');
  await new Promise((r) => dump.once('close', r));

  const t = rarpTimes(out);
  assert.is(t.length, 5, `5 RARP rounds: ${out}`);
  // Rounds at 0, 50 and 200 ms after completion were due before cont: one burst, written
  // back to back in one event-loop turn.
  const burst = t.filter((x) => x - t[0]! < 5);
  assert.ok(burst.length >= 3, `the rounds due before cont leave together: ${t.map((x) => (x - contAt).toFixed(1)).join(', ')} ms after cont`);
  assert.ok(t[0]! >= contAt - 5, 'the burst leaves at cont');
  // The last round is due 800 ms after completion, not after cont.
  assert.ok(t[4]! - completedAt < 800 + 300, `last round ${(t[4]! - completedAt).toFixed(0)} ms after completion`);
}));

test.run();
