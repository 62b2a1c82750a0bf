import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync, fstatSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { ioctlPtr } from '../libc.js';
import { RpDecoder, StreamDecoder, StreamEncoder, encodeRp, type RpMessage, type StreamSection } from '../../engine/migration/stream.js';
import { GuestRam, PAGE_SIZE } from '../../engine/guest/ram.js';
import {
  closeFd, dupFd, recvFd, sendFd, sendFds, sendFdsOnOneByte, socketFd, startReading, stopReading,
} from '../fd-passing.js';

interface Pair { a: net.Socket; b: net.Socket; close(): void }

/** A connected UNIX socket pair made with Node net (server side b, client side a). */
async function socketPair(dir: string): Promise<Pair> {
  const path = join(dir, `s${Math.random().toString(36).slice(2, 8)}.sock`);
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((res) => server.once('connection', res));
  await new Promise<void>((res) => server.listen(path, res));
  const a = net.connect(path);
  await new Promise<void>((res, rej) => { a.once('connect', res); a.once('error', rej); });
  const b = await accepted;
  server.close();
  return { a, b, close: () => { a.destroy(); b.destroy(); } };
}

const dir = mkdtempSync(join(tmpdir(), 'fdpass-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the received fd is the same open file: writes share one file offset', async () => {
  const p = await socketPair(dir);
  try {
    stopReading(p.b);
    const file = join(dir, 'shared.txt');
    const fd = openSync(file, 'w+');
    await sendFd(socketFd(p.a), fd, 0x2a);
    const got = await recvFd(socketFd(p.b));
    assert.is(got.byte, 0x2a);
    assert.ok(got.fd !== null && got.fd !== fd);
    assert.is(got.extraClosed, 0);
    assert.not.ok(got.truncated);
    // Same open file description: the second write continues at the first one's offset.
    writeSync(got.fd!, 'abc');
    writeSync(fd, 'def');
    assert.is(readFileSync(file, 'utf8'), 'abcdef');
    closeFd(got.fd!);
    closeSync(fd);
  } finally { p.close(); }
});

test('several fds in order, one byte each, interleaved with normal stream data', async () => {
  const p = await socketPair(dir);
  try {
    const files = [0, 1, 2].map((i) => openSync(join(dir, `q${i}`), 'w+'));
    // Stream data first, read by Node; then the reader stops, then the fds.
    const first = new Promise<Buffer>((res) => p.b.once('data', res));
    p.a.write('hello');
    assert.is((await first).toString(), 'hello');
    stopReading(p.b);
    await sendFds(socketFd(p.a), files);
    const inodes = [];
    for (let i = 0; i < 3; i++) {
      const r = await recvFd(socketFd(p.b));
      assert.ok(r.fd !== null);
      inodes.push(fstatSync(r.fd!).ino);
      closeFd(r.fd!);
    }
    assert.equal(inodes, files.map((f) => fstatSync(f).ino));
    // The Node reader picks up the stream again after the fds.
    startReading(p.b);
    const after = new Promise<Buffer>((res) => p.b.once('data', res));
    p.a.write('world');
    assert.is((await after).toString(), 'world');
    files.forEach((f) => closeSync(f));
  } finally { p.close(); }
});

test('extra fds on one byte are closed and reported; a byte without fd says so', async () => {
  const p = await socketPair(dir);
  try {
    stopReading(p.b);
    const f1 = openSync(join(dir, 'x1'), 'w+'), f2 = openSync(join(dir, 'x2'), 'w+');
    await sendFdsOnOneByte(socketFd(p.a), [f1, f2, f1]);
    const r = await recvFd(socketFd(p.b));
    assert.ok(r.fd !== null);
    assert.is(r.extraClosed, 2);
    assert.is(fstatSync(r.fd!).ino, fstatSync(f1).ino);
    closeFd(r.fd!);
    p.a.write(Buffer.from([7]));
    const none = await recvFd(socketFd(p.b));
    assert.equal(none, { byte: 7, fd: null, extraClosed: 0, truncated: false });
    closeSync(f1); closeSync(f2);
  } finally { p.close(); }
});

test('recvFd waits (bounded) for a late byte, then times out with a message', async () => {
  const p = await socketPair(dir);
  try {
    stopReading(p.b);
    const fd = openSync(join(dir, 'late'), 'w+');
    setTimeout(() => { void sendFd(socketFd(p.a), fd); }, 50);
    const r = await recvFd(socketFd(p.b), { timeoutMs: 3000 });
    assert.ok(r.fd !== null);
    closeFd(r.fd!);
    closeSync(fd);
    try {
      await recvFd(socketFd(p.b), { timeoutMs: 60 });
      assert.unreachable('should time out');
    } catch (e) {
      assert.match((e as Error).message, /not ready within 60 ms \(EAGAIN\)/);
    }
  } finally { p.close(); }
});

test('a peer that closes is an error, not a wait', async () => {
  const p = await socketPair(dir);
  stopReading(p.b);
  const closed = new Promise((res) => p.a.once('close', res));
  p.a.end();
  p.a.destroy();
  await closed;
  await new Promise((r) => setTimeout(r, 20));
  try {
    await recvFd(socketFd(p.b), { timeoutMs: 2000 });
    assert.unreachable('should fail');
  } catch (e) {
    assert.match((e as Error).message, /peer closed socket fd \d+ while an fd was expected/);
  } finally { p.close(); }
});

test('dupFd gives a new fd for the same file; closeFd closes it', () => {
  const fd = openSync(join(dir, 'd'), 'w+');
  const d = dupFd(fd);
  assert.is.not(d, fd);
  assert.is(fstatSync(d).ino, fstatSync(fd).ino);
  closeFd(d);
  assert.throws(() => fstatSync(d), /EBADF/);
  assert.throws(() => dupFd(d), /dup of fd \d+ failed: Bad file descriptor \(errno 9\)/);
  closeSync(fd);
});

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

test('the STREAM.md local-migration handshake over one socket: stream, FDS_READY, fds, stream', async () => {
  const p = await socketPair(dir);
  const files = [0, 1].map((i) => openSync(join(dir, `hq${i}`), 'w+'));
  const got: Array<number | null> = [];
  try {
    const ram = new GuestRam(512 * PAGE_SIZE);
    ram.fill(0.5, 11);
    ram.markAllDirty();
    const device = { nic: { mac: '52:54:00:12:34:56', rxEnabled: true, queues: 2 }, guest: { ip: '10.0.0.2', prefixLength: 24, arpCache: [], udp: [] } };
    const queue = { vnetHdr: true, offloadFlags: 0, enabled: true, vnetHdrLen: 12 };

    // Destination: decode; at the tap-local section stop reading, send FDS_READY, take the fds.
    const dst = new GuestRam(ram.size);
    const decoder = new StreamDecoder({ ramSize: ram.size, local: true, queues: 2 });
    const sections: string[] = [];
    const dstDone = new Promise<void>((resolve, reject) => {
      p.b.on('data', (chunk: Buffer) => {
        try {
          for (const sec of decoder.push(chunk) as StreamSection[]) {
            sections.push(sec.type);
            if (sec.type === 'page') dst.write(sec.index, sec.data);
          }
        } catch (e) { reject(e); return; }
        if (decoder.awaitingFds) {
          const n = decoder.awaitingFds;
          stopReading(p.b);
          p.b.write(encodeRp({ type: 'fds-ready', count: n }));
          void (async () => {
            for (let i = 0; i < n; i++) got.push((await recvFd(socketFd(p.b))).fd!);
            decoder.fdsReceived(n);
            startReading(p.b);
          })().catch(reject);
        }
        if (decoder.done) { p.b.write(encodeRp({ type: 'vm-started' })); resolve(); }
      });
    });

    // Source: RAM pass and the TAP section; the fds only after FDS_READY; then the rest.
    const rp = new RpDecoder();
    const fdsReady = new Promise<RpMessage>((res) => p.a.on('data', (c: Buffer) => { for (const m of rp.push(c)) if (m.type === 'fds-ready') res(m); }));
    const enc = new StreamEncoder();
    enc.header({ ramSize: ram.size, local: true, netpass: false, returnPath: true, queues: 2 }).passStart(1);
    let sent = 0;
    for (const pg of ram.syncDirty()) { if (ram.isZero(pg)) enc.zeroPage(pg); else enc.page(pg, ram.read(pg)); sent++; }
    enc.passEnd(1, sent).tapLocal([queue, queue]);
    p.a.write(enc.flush());
    const ready = await within(fdsReady, 10_000, 'FDS_READY');
    assert.equal(ready, { type: 'fds-ready', count: 2 });
    await sendFds(socketFd(p.a), files);
    p.a.write(enc.fdsSent(2).device(device).eof().flush());
    await within(dstDone, 10_000, 'destination EOF');

    assert.equal(sections.slice(-4), ['tap-local', 'fds-sent', 'device', 'eof']);
    assert.is(dst.digest(), ram.digest());
    assert.ok(got.every((fd) => fd !== null), 'every fd byte carried an fd');
    assert.equal(got.map((fd) => fstatSync(fd!).ino), files.map((fd) => fstatSync(fd).ino));
  } finally {
    p.close();
    got.forEach((fd) => { if (fd !== null) closeFd(fd); });
    files.forEach((fd) => closeSync(fd));
  }
});

const TUNGETIFF = 0x800454d2; // linux/if_tun.h


test('a TAP fd opened in another process and netns arrives attached to that TAP', async () => {
  if (!requirePrivilege('TAP fd passing test')) return;
  const id = randomBytes(3).toString('hex');
  const ns = `a2fd-${id}`, tap = `a2t${id}`;
  const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
  const sockPath = join(dir, `tap-${id}.sock`);
  const server = net.createServer();
  let child: ReturnType<typeof spawn> | undefined;
  let received: number | null = null;
  try {
    ip('netns', 'add', ns);
    ip('-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    ip('-n', ns, 'link', 'set', tap, 'up');
    const accepted = new Promise<net.Socket>((res) => server.once('connection', res));
    await new Promise<void>((res) => server.listen(sockPath, res));
    // The child opens the TAP inside the netns (TUNSETIFF), sends the fd, and exits.
    const script = `
      import net from 'node:net';
      import { openTapFd } from ${JSON.stringify(new URL('../../engine/guest/tap.js', import.meta.url).href)};
      import { sendFd, socketFd } from ${JSON.stringify(new URL('../fd-passing.js', import.meta.url).href)};
      const [sockPath, tap] = process.argv.slice(1);
      const fd = openTapFd(tap, false);
      const s = net.connect(sockPath, async () => { await sendFd(socketFd(s), fd, 1); s.destroy(); });`;
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script, sockPath, tap], { stdio: ['ignore', 'inherit', 'inherit'] });
    const exited = new Promise<number | null>((res) => child!.once('exit', res));
    const sock = await within(Promise.race([accepted, exited.then((c): never => { throw new Error(`TAP opener exited (${c}) before connecting`); })]), 15_000, 'TAP opener connecting');
    stopReading(sock);
    const r = await recvFd(socketFd(sock), { timeoutMs: 10_000 });
    received = r.fd;
    assert.is(r.byte, 1);
    assert.ok(received !== null, 'an fd arrived');
    sock.destroy();
    assert.is(await within(exited, 15_000, 'TAP opener exiting'), 0, 'child exited cleanly');
    // The child's copy is gone; ours still names the TAP, and writes reach it as received frames.
    const ifr = Buffer.alloc(40);
    ioctlPtr(received!, TUNGETIFF, ifr, 'TUNGETIFF on the received fd');
    assert.is(ifr.toString('latin1', 0, ifr.indexOf(0)), tap);
    const frame = Buffer.alloc(60);
    frame.fill(0xff, 0, 6);
    Buffer.from([0x02, 0, 0, 0, 0, 1]).copy(frame, 6);
    frame.writeUInt16BE(0x88b5, 12); // local experimental ethertype
    writeSync(received!, frame);
    const stats = JSON.parse(ip('-n', ns, '-j', '-s', 'link', 'show', 'dev', tap))[0].stats64;
    assert.ok(stats.rx.packets >= 1, `TAP rx packets ${stats.rx.packets}`);
  } finally {
    if (received !== null) closeFd(received);
    child?.kill('SIGKILL');
    server.close();
    try { ip('netns', 'del', ns); } catch { /* not created */ }
  }
});

test.run();
