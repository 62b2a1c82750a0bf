// The batch UDP socket on loopback: what sendmmsg sends, recvmmsg returns (lengths, source
// address and port), what the kernel gives for SO_RCVBUF, its drop counter, and its errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readSeqPayload, SEQ_PAYLOAD_BYTES, writeSeqPayload } from '../seq-payload.js';
import { UdpSendError, UdpSocket, UdpSocketError } from '../udp-socket.js';

const LOOPBACK = 0x7f00_0001;

function caught(f: () => unknown): Error | undefined {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

function pair(batch: number): { a: UdpSocket; b: UdpSocket; bPort: number; close(): void } {
  const a = UdpSocket.open({ batch }), b = UdpSocket.open({ batch });
  const bPort = b.bind(0, '127.0.0.1');
  a.setDestination('127.0.0.1', bPort);
  return { a, b, bPort, close: () => { a.close(); b.close(); } };
}

test('sendmmsg of a batch from any slot; recvmmsg returns each datagram with its length and source', () => {
  const { a, b, bPort, close } = pair(8);
  try {
    assert.ok(bPort > 0);
    assert.is(b.localPort(), bPort);
    for (let i = 0; i < 8; i++) writeSeqPayload(a.sendSlots[i]!, 0, 100 + i, 7);
    assert.is(a.send(2, 5, SEQ_PAYLOAD_BYTES), 5);
    const aPort = a.localPort();
    assert.ok(aPort > 0, 'the first send bound the sender');
    // Loopback delivers inside the sendmmsg call, so all five are already queued.
    assert.is(b.receive(), 5);
    for (let i = 0; i < 5; i++) {
      assert.is(b.recvLength(i), 16);
      assert.is(b.recvAddress(i), LOOPBACK);
      assert.is(b.recvPort(i), aPort);
      assert.equal(readSeqPayload(b.recvSlots[i]!, 0), { seq: 102 + i, timeUs: 7 });
    }
    assert.is(b.receive(), 0, 'empty socket: EAGAIN is 0, not an error');
    // The kernel rewrote msg_namelen; a second round must still see the source.
    a.sendSlots[0]!.fill(9, 0, 100);
    assert.is(a.send(0, 1, 100), 1);
    assert.is(b.receive(), 1);
    assert.is(b.recvLength(0), 100);
    assert.is(b.recvPort(0), aPort);
    assert.is(b.recvSlots[0]![99], 9);
  } finally {
    close();
  }
});

test('SO_RCVBUF reads back what the kernel gave: doubled, and never below its minimum', () => {
  const s = UdpSocket.open();
  try {
    assert.is(s.setReceiveBuffer(65536), 131072);
    const tiny = s.setReceiveBuffer(1);
    assert.ok(tiny > 1 && tiny < 16384, `kernel minimum ${tiny}`);
    assert.is(s.setSendBuffer(65536), 131072);
  } finally {
    s.close();
  }
});

test('drops() is the kernel drop count of this socket: a tiny buffer overflowed by a burst', () => {
  const { a, b, close } = pair(200);
  try {
    b.setReceiveBuffer(1);
    assert.is(b.drops(), 0);
    for (let i = 0; i < 200; i++) writeSeqPayload(a.sendSlots[i]!, 0, i, 0);
    assert.is(a.send(0, 200, SEQ_PAYLOAD_BYTES), 200);
    let received = 0;
    for (let n = b.receive(); n > 0; n = b.receive()) received += n;
    const drops = b.drops();
    assert.ok(drops > 0, 'the burst overflowed the buffer');
    assert.is(received + drops, 200);
  } finally {
    close();
  }
});

test('errors name the call, the errno text and what to check', () => {
  const { a, bPort, close } = pair(4);
  const c = UdpSocket.open();
  try {
    const inUse = caught(() => c.bind(bPort, '127.0.0.1'));
    assert.instance(inUse, UdpSocketError);
    assert.is((inUse as UdpSocketError).call, 'bind');
    assert.match(inUse!.message, `bind failed for UDP 127.0.0.1:${bPort} (is the port in use?): Address already in use (errno 98)`);
    // Broadcast without SO_BROADCAST: the kernel refuses the first datagram.
    a.setDestination('255.255.255.255', 9);
    const refused = caught(() => a.send(0, 2, 16));
    assert.instance(refused, UdpSendError);
    assert.is((refused as UdpSendError).taken, 0);
    assert.match(refused!.message, 'sendmmsg failed for UDP to 255.255.255.255:9: Permission denied (errno 13)');
    assert.throws(() => c.send(0, 1, 16), /call setDestination\(address, port\) first/);
    assert.throws(() => a.send(3, 2, 16), /outside the 4 slots of 2048 bytes/);
    assert.throws(() => a.send(0, 1, 5000), RangeError);
    assert.throws(() => UdpSocket.open({ batch: 0 }), /batch must be an integer from 1 to 1024/);
    assert.throws(() => c.setDestination('localhost', 9), /invalid IPv4 address 'localhost'/);
  } finally {
    close();
    c.close();
  }
  c.close();
  assert.throws(() => c.receive(), /is closed/);
});

test.run();
