// A destination fed a corrupt or foreign stream fails with a message naming the problem and
// exits 1 (as QEMU's destination does), never hanging. No TAP is needed: the VM has no NIC.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamEncoder } from '../stream.js';

const BIN = fileURLToPath(new URL('../../../../bin/switchover.js', import.meta.url));
const RAM = 16 * 2 ** 20;

/** Starts a destination, writes `bytes` into its incoming socket, closes, and returns exit code and stderr. */
async function feed(bytes: Buffer, close = true): Promise<{ code: number | null; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'swa1s-'));
  const sock = join(dir, 'in.sock');
  const p = spawn(process.execPath, [BIN, 'vm', '-m', '16M', '-qmp', `unix:${join(dir, 'q.sock')},server=on,wait=off`, '-incoming', `unix:${sock}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  const kill = setTimeout(() => p.kill('SIGKILL'), 15000);
  try {
    let c: net.Socket | undefined;
    for (let i = 0; i < 100 && !c; i++) {
      c = await new Promise<net.Socket | undefined>((resolve) => {
        const s = net.connect(sock, () => resolve(s));
        s.once('error', () => resolve(undefined));
      });
      if (!c) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(c, 'destination listens');
    c!.on('error', () => {});
    c!.write(bytes);
    if (close) c!.end();
    const code = await exited;
    c!.destroy();
    return { code, stderr };
  } finally {
    clearTimeout(kill);
    p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function header(ramSize = RAM): Buffer {
  return new StreamEncoder().header({ ramSize, local: false, netpass: false, returnPath: false, queues: 1 }).flush();
}

test('a foreign stream (wrong magic) is named, without waiting for more data', async () => {
  const r = await feed(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), false);
  assert.is(r.code, 1);
  assert.match(r.stderr, /load of migration failed: not a switchover migration stream \(magic 0x/);
});

test('a byte-swapped stream is recognised as such', async () => {
  const h = header();
  h.writeBigUInt64BE(h.readBigUInt64LE(0), 0);
  const r = await feed(h);
  assert.is(r.code, 1);
  assert.match(r.stderr, /byte-swapped stream/);
});

test('a wrong version is named', async () => {
  const h = header();
  h.writeUInt32LE(9, 8);
  const r = await feed(h);
  assert.is(r.code, 1);
  assert.match(r.stderr, /unsupported stream version 9/);
});

test('a truncated stream is named', async () => {
  const body = new StreamEncoder().passStart(1).page(0, Buffer.alloc(4096, 7)).flush();
  const r = await feed(Buffer.concat([header(), body.subarray(0, body.length - 100)]));
  assert.is(r.code, 1);
  assert.match(r.stderr, /truncated stream/);
});

test('garbage after a valid header is named', async () => {
  const r = await feed(Buffer.concat([header(), Buffer.from([0xee, 1, 2, 3, 4, 5, 6, 7])]), false);
  assert.is(r.code, 1);
  assert.match(r.stderr, /unknown section type 0xee/);
});

test('a RAM size that differs from -m is named', async () => {
  const r = await feed(header(32 * 2 ** 20));
  assert.is(r.code, 1);
  assert.match(r.stderr, /start the destination with the same -m/);
});

test.run();
