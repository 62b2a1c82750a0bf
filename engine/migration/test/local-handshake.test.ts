// The local-migration handshake of STREAM.md over one real UNIX socket: the RAM stream, the
// tap-local section, FDS_READY on the return path, the TAP fds over SCM_RIGHTS
// (lib/fd-passing.ts), then the rest of the stream, read again by Node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { socketPair } from '../../../fixtures/socket-pair.js';
import { closeFd, recvFd, sendFds, socketFd, startReading, stopReading } from '../../../lib/fd-passing.js';
import { GuestRam, PAGE_SIZE } from '../../guest/ram.js';
import { RpDecoder, StreamDecoder, StreamEncoder, encodeRp, type RpMessage, type StreamSection } from '../stream.js';

const dir = mkdtempSync(join(tmpdir(), 'fdhandshake-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

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

test.run();
