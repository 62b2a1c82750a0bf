// The one MAC and IPv4 helper set: both directions, and what is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatMac, intToIp, ipToInt, isIpv4, isMac, parseIpv4, parseMac } from '../net-addr.js';

const BAD_IPV4 = ['1.2.3', '256.1.1.1', ' 1.2.3.4', '1.2.3.4.5', '1..2.3', '-1.2.3.4', '1.2.3.4/24', ''];

test('IPv4 text, bytes and u32 convert both ways; bad text is refused', () => {
  assert.is(ipToInt('127.0.0.1'), 0x7f00_0001);
  assert.is(ipToInt('255.255.255.255'), 0xffff_ffff);
  assert.is(intToIp(ipToInt('192.168.100.2')), '192.168.100.2');
  assert.equal([...parseIpv4('192.168.100.2')], [192, 168, 100, 2]);
  assert.ok(isIpv4('0.0.0.0') && isIpv4('10.0.0.255'));
  for (const bad of BAD_IPV4) {
    assert.not.ok(isIpv4(bad), bad);
    assert.throws(() => ipToInt(bad), new RegExp(`invalid IPv4 address '${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}'`), bad);
    assert.throws(() => parseIpv4(bad), /invalid IPv4 address/, bad);
  }
  assert.not.ok(isIpv4(5) || isIpv4(undefined), 'only strings are addresses');
});

test('MAC text and bytes convert both ways; bad text is refused', () => {
  const mac = '52:54:00:0a:bc:ff';
  assert.equal([...parseMac(mac)], [0x52, 0x54, 0, 0x0a, 0xbc, 0xff]);
  assert.is(formatMac(parseMac(mac)), mac);
  assert.is(formatMac(Buffer.from([0, 0, 1, 2, 3, 4, 5, 6, 7]), 2), '01:02:03:04:05:06');
  assert.ok(isMac('52:54:00:0A:BC:FF'), 'either case');
  for (const bad of ['52:54:00:12:34', '52:54:00:12:34:56:78', '52-54-00-12-34-56', '5:54:00:12:34:56', 'zz:54:00:12:34:56']) {
    assert.not.ok(isMac(bad), bad);
    assert.throws(() => parseMac(bad), /invalid MAC address .*: expected six hex pairs/, bad);
  }
  assert.not.ok(isMac(null), 'only strings are MACs');
});

test.run();
