import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatMac, parseMac } from '../../lib/net-addr.js';
import { gratuitousArpFrame, rarpFrame } from '../../lib/announce-frames.js';
import { ANNOUNCE_DEFAULTS, Announcer, announceDelays, checkAnnounceParams } from '../migration/announce.js';

const MAC = '52:54:00:12:34:56';

test('RARP frame matches QEMU announce_self_create byte for byte', () => {
  const f = rarpFrame(MAC);
  const expected = Buffer.from(
    'ffffffffffff' + '525400123456' + '8035' // Ethernet: broadcast, NIC MAC, RARP
    + '0001' + '0800' + '06' + '04' + '0003' // htype, ptype, hlen, plen, op 3 (reverse request)
    + '525400123456' + '00000000' // sender hw, sender IP
    + '525400123456' + '00000000' // target hw, target IP
    + '00'.repeat(18), 'hex'); // padding to 60
  assert.is(f.length, 60);
  assert.ok(f.equals(expected), f.toString('hex'));
});

test('gratuitous ARP: request, sender IP = target IP, broadcast', () => {
  const f = gratuitousArpFrame(parseMac(MAC), '192.168.100.2');
  assert.is(f.length, 60);
  assert.is(f.subarray(0, 6).toString('hex'), 'ffffffffffff');
  assert.is(formatMac(f.subarray(6, 12)), MAC);
  assert.is(f.readUInt16BE(12), 0x0806);
  assert.is(f.readUInt16BE(20), 1);
  assert.is(formatMac(f.subarray(22, 28)), MAC);
  assert.is(f.subarray(28, 32).toString('hex'), 'c0a86402');
  assert.is(f.subarray(32, 38).toString('hex'), '000000000000');
  assert.is(f.subarray(38, 42).toString('hex'), 'c0a86402');
  assert.throws(() => gratuitousArpFrame(MAC, '300.1.1.1'), /invalid IPv4 address/);
  assert.throws(() => parseMac('52:54:00'), /invalid MAC address '52:54:00'/);
});

test('schedule follows qemu_announce_timer_step', () => {
  assert.equal(announceDelays(ANNOUNCE_DEFAULTS), [0, 50, 150, 250, 350]);
  assert.equal(announceDelays({ initial: 100, max: 250, rounds: 6, step: 100 }), [0, 100, 200, 250, 250, 250]);
  assert.equal(announceDelays({ initial: 50, max: 550, rounds: 0, step: 100 }), []);
  assert.equal(announceDelays({ initial: 1, max: 1, rounds: 2, step: 1 }), [0, 1]);
});

test('parameter ranges and messages are QEMU\'s', () => {
  checkAnnounceParams(ANNOUNCE_DEFAULTS);
  assert.throws(() => checkAnnounceParams({ ...ANNOUNCE_DEFAULTS, rounds: 1001 }), /Parameter 'announce_rounds' expects a value between 0 and 1000/);
  assert.throws(() => checkAnnounceParams({ ...ANNOUNCE_DEFAULTS, step: 0 }), /Parameter 'announce_step' expects a value between 0 and 10000/);
  assert.throws(() => checkAnnounceParams({ ...ANNOUNCE_DEFAULTS, initial: 100_001 }), /announce_initial/);
});

test('Announcer emits the rounds in order on the schedule', async () => {
  const times: number[] = [];
  const t0 = performance.now();
  const a = new Announcer({ initial: 20, max: 60, rounds: 4, step: 20 }, (n) => { times.push(n, performance.now() - t0); });
  a.start();
  assert.equal(times.slice(0, 1), [1], 'round 1 goes out synchronously');
  await a.finished;
  assert.equal(times.filter((_, i) => i % 2 === 0), [1, 2, 3, 4]);
  const at = times.filter((_, i) => i % 2 === 1);
  // Cumulative schedule 0, 20, 60, 120 ms; timers only fire late, never early.
  assert.ok(at[1]! >= 19 && at[2]! >= 59 && at[3]! >= 119, at.join(','));
  assert.throws(() => a.start(), /already started/);
});

test('Announcer.cancel stops the remaining rounds', async () => {
  let rounds = 0;
  const a = new Announcer({ initial: 30, max: 30, rounds: 5, step: 1 }, () => { rounds++; });
  a.start();
  a.cancel();
  await a.finished;
  await new Promise((r) => setTimeout(r, 80));
  assert.is(rounds, 1);
});

test.run();
