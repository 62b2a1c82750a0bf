import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync, fstatSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { socketPair } from '../../fixtures/socket-pair.js';
import { ioctlPtr } from '../libc.js';
import { closeFd, recvFd, sendFd, sendFds, socketFd, startReading, stopReading } from '../fd-passing.js';

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

test('a byte without fd says so', async () => {
  const p = await socketPair(dir);
  try {
    stopReading(p.b);
    p.a.write(Buffer.from([7]));
    const none = await recvFd(socketFd(p.b));
    assert.equal(none, { byte: 7, fd: null, extraClosed: 0, truncated: false });
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

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

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
      import { openTap } from ${JSON.stringify(new URL('../tun.js', import.meta.url).href)};
      import { sendFd, socketFd } from ${JSON.stringify(new URL('../fd-passing.js', import.meta.url).href)};
      const [sockPath, tap] = process.argv.slice(1);
      const fd = openTap(tap);
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
