import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server, type Socket } from 'node:net';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nowMs, QmpClient, QmpError, QmpProtocolError, QmpTimeoutError, type QmpTranscriptEntry } from '../qmp-client.js';

const GREETING = { QMP: { version: { qemu: { micro: 0, minor: 2, major: 10 }, package: 'fake' }, capabilities: ['oob'] } };
type Handler = (req: { execute: string; arguments?: Record<string, unknown>; id?: unknown }, sock: Socket) => void;

const dir = mkdtempSync(join(tmpdir(), 'so-qmp-test-'));
let n = 0;
const servers: Server[] = [];

/** A fake QMP server on a real UNIX socket; `handler` answers each command after negotiation. */
function fakeServer(handler: Handler, opts: { greeting?: string; delayMs?: number } = {}): string {
  const path = join(dir, `qmp${n++}.sock`);
  const start = (): void => {
    const server = createServer((sock) => {
      sock.on('error', () => undefined); // the client hanging up mid-write is part of some tests
      sock.write((opts.greeting ?? JSON.stringify(GREETING)) + '\n');
      let buf = '';
      sock.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const req = JSON.parse(buf.slice(0, i));
          buf = buf.slice(i + 1);
          if (req.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: req.id }) + '\n');
          else handler(req, sock);
        }
      });
    });
    server.listen(path);
    servers.push(server);
  };
  if (opts.delayMs) setTimeout(start, opts.delayMs); else start();
  return path;
}

const reply = (sock: Socket, obj: unknown): void => { sock.write(JSON.stringify(obj) + '\n'); };
const event = (name: string, data: unknown) => ({ event: name, data, timestamp: { seconds: 1700000000, microseconds: 123456 } });

test('connect waits for the socket to appear, negotiates, executes typed commands', async () => {
  const path = fakeServer((req, sock) => {
    if (req.execute === 'query-status') reply(sock, { return: { running: true, status: 'running' }, id: req.id });
  }, { delayMs: 300 });
  const qmp = await QmpClient.connect(path, { timeoutMs: 5_000 });
  assert.is(qmp.greeting.QMP.version.qemu.major, 10);
  const st = await qmp.execute('query-status');
  assert.equal(st, { running: true, status: 'running' });
  await qmp.close();
});

test('connect gives up after its timeout with a clear error', async () => {
  const t0 = Date.now();
  const err = await QmpClient.connect(join(dir, 'never.sock'), { timeoutMs: 300 }).catch((e: Error) => e);
  assert.instance(err, QmpTimeoutError);
  assert.match((err as Error).message, /never\.sock/);
  assert.ok(Date.now() - t0 < 3_000);
});

test('QEMU errors keep class and desc', async () => {
  const path = fakeServer((req, sock) => reply(sock, { error: { class: 'CommandNotFound', desc: "The command bogus has not been found" }, id: req.id }));
  const qmp = await QmpClient.connect(path);
  const err = await qmp.execute('migrate', { uri: 'unix:/x' }).catch((e: Error) => e);
  assert.instance(err, QmpError);
  assert.is((err as QmpError).class, 'CommandNotFound');
  assert.is((err as QmpError).desc, 'The command bogus has not been found');
  assert.match((err as Error).message, /QMP migrate failed: CommandNotFound/);
  await qmp.close();
});

test('events are recorded with both timestamps; waitEvent sees past (since) and future events', async () => {
  const path = fakeServer((req, sock) => {
    if (req.execute === 'stop') {
      reply(sock, event('STOP', {}));
      reply(sock, event('MIGRATION', { status: 'setup' }));
      reply(sock, { return: {}, id: req.id });
      setTimeout(() => reply(sock, event('MIGRATION', { status: 'completed' })), 100);
    }
  });
  const qmp = await QmpClient.connect(path);
  const seen: string[] = [];
  qmp.on('MIGRATION', (ev) => seen.push(ev.data.status));
  const mark = qmp.events.length;
  const before = Date.now();
  await qmp.execute('stop');
  const stop = await qmp.waitEvent('STOP', undefined, 1_000, mark);
  assert.equal(stop.timestamp, { seconds: 1700000000, microseconds: 123456 });
  assert.ok(stop.receivedAt >= before - 1 && stop.receivedAt <= Date.now() + 1);
  const done = await qmp.waitEvent('MIGRATION', (d) => d.status === 'completed', 2_000, mark);
  assert.is(done.data.status, 'completed');
  assert.equal(seen, ['setup', 'completed']);
  // Without `since`, only events from now on count.
  const err = await qmp.waitEvent('STOP', undefined, 150).catch((e: Error) => e);
  assert.instance(err, QmpTimeoutError);
  await qmp.close();
});

test('the transcript sees greeting, commands, replies and events in order, on the harness clock', async () => {
  const path = fakeServer((req, sock) => {
    reply(sock, event('MIGRATION', { status: 'active' }));
    reply(sock, { return: {}, id: req.id });
  });
  const lines: QmpTranscriptEntry[] = [];
  const before = nowMs();
  const qmp = await QmpClient.connect(path, { transcript: (e) => lines.push(e) });
  await qmp.execute('migrate', { uri: 'unix:/x' });
  await qmp.close();
  assert.equal(lines.map((l) => l.dir), ['greeting', 'command', 'reply', 'command', 'event', 'reply']);
  assert.equal(lines[0]!.msg, GREETING);
  assert.equal(lines[3]!.msg, { execute: 'migrate', id: 'so-2', arguments: { uri: 'unix:/x' } });
  assert.equal((lines[4]!.msg as { data: unknown }).data, { status: 'active' });
  const ts = lines.map((l) => l.t);
  assert.ok(ts.every((t, i) => t >= before && (i === 0 || t >= ts[i - 1]!) && t <= nowMs()), `times ${ts.join(', ')}`);
  // The recorded events are a union narrowed by name: data.status is typed only for MIGRATION.
  assert.equal(qmp.events.map((e) => (e.event === 'MIGRATION' ? e.data.status : e.event)), ['active']);
  // Arguments follow lib/qmp-protocol.ts (never called: the build checks these lines).
  const typed = (): unknown[] => [
    // @ts-expect-error migrate needs its uri
    qmp.execute('migrate'),
    // @ts-expect-error query-status takes no arguments
    qmp.execute('query-status', { x: 1 }),
    qmp.execute('migrate-set-parameters', {}),
    qmp.execute('quit', undefined, { timeoutMs: 1 }),
  ];
  assert.type(typed, 'function');
});

test('a malformed reply fails that command only; the next one works', async () => {
  let calls = 0;
  const path = fakeServer((req, sock) => {
    calls++;
    if (calls === 1) sock.write('{"return": {"running": tru\n');
    else if (calls === 2) sock.write('[1,2,3]\n');
    else if (calls === 3) reply(sock, { id: req.id, neither: 1 });
    else reply(sock, { return: { running: false, status: 'paused' }, id: req.id });
  });
  const qmp = await QmpClient.connect(path);
  const e1 = await qmp.execute('query-status').catch((e: Error) => e);
  assert.instance(e1, QmpProtocolError);
  assert.match((e1 as Error).message, /malformed line: \{"return": \{"running": tru/);
  assert.instance(await qmp.execute('query-status').catch((e: Error) => e), QmpProtocolError);
  const e3 = await qmp.execute('query-status').catch((e: Error) => e);
  assert.match((e3 as Error).message, /neither return nor error/);
  assert.equal(await qmp.execute('query-status'), { running: false, status: 'paused' });
  await qmp.close();
});

test('a command that gets no answer times out; a late answer is ignored', async () => {
  let calls = 0;
  const path = fakeServer((req, sock) => {
    calls++;
    if (calls === 1) setTimeout(() => reply(sock, { return: { late: true }, id: req.id }), 300);
    else reply(sock, { return: { running: true, status: 'running' }, id: req.id });
  });
  const qmp = await QmpClient.connect(path);
  const err = await qmp.execute('query-status', undefined, { timeoutMs: 100 }).catch((e: Error) => e);
  assert.instance(err, QmpTimeoutError);
  assert.match((err as Error).message, /query-status: no answer within 100 ms/);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await qmp.execute('query-status'), { running: true, status: 'running' });
  await qmp.close();
});

test('a peer without a greeting, or one that hangs up, is a protocol error', async () => {
  const noGreeting = fakeServer(() => undefined, { greeting: '{"hello": 1}' });
  const e1 = await QmpClient.connect(noGreeting, { timeoutMs: 1_000 }).catch((e: Error) => e);
  assert.instance(e1, QmpProtocolError);
  assert.match((e1 as Error).message, /no greeting/);
  const hangup = fakeServer((_req, sock) => sock.destroy());
  const qmp = await QmpClient.connect(hangup);
  const pendingWait = qmp.waitEvent('RESUME', undefined, 5_000).catch((e: Error) => e);
  const e2 = await qmp.execute('cont').catch((e: Error) => e);
  assert.instance(e2, QmpProtocolError);
  assert.match((e2 as Error).message, /closed/);
  assert.instance(await pendingWait, QmpProtocolError);
  assert.instance(await qmp.execute('cont').catch((e: Error) => e), QmpProtocolError);
});

test('an endless line is refused, not buffered forever', async () => {
  const path = fakeServer((_req, sock) => { sock.write('x'.repeat(17 * 1024 * 1024)); });
  const qmp = await QmpClient.connect(path);
  const err = await qmp.execute('query-status', undefined, { timeoutMs: 5_000 }).catch((e: Error) => e);
  assert.instance(err, QmpProtocolError);
  assert.match((err as Error).message, /over 16777216 bytes/);
});

test('sendFd passes the fd with the getfd command (SCM_RIGHTS)', async () => {
  const { recvFd, socketFd, stopReading, startReading, closeFd } = await import('../fd-passing.js');
  const file = join(dir, 'passed.txt');
  writeFileSync(file, 'hello');
  const path = join(dir, `qmp${n++}.sock`);
  const got = new Promise<{ ino: number; cmd: string }>((resolve, reject) => {
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.write(JSON.stringify(GREETING) + '\n');
      let buf = '';
      const onData = async (d: string): Promise<void> => {
        buf += d;
        if (!buf.includes('\n')) return;
        const req = JSON.parse(buf.slice(0, buf.indexOf('\n')));
        buf = '';
        // Negotiated: the next byte carries the fd, so stop Node reading before it comes.
        // Stopped from inside a 'data' callback, Node's stream loop restarts the reader; so
        // stop it on the next turn, then answer (the client sends the fd only after that).
        sock.off('data', onData);
        await new Promise((r) => setImmediate(r));
        stopReading(sock);
        reply(sock, { return: {}, id: req.id });
        try {
          const r = await recvFd(socketFd(sock));
          assert.ok(r.fd !== null, `no fd came with byte ${r.byte} (${JSON.stringify(r)})`);
          const ino = fstatSync(r.fd!).ino;
          closeFd(r.fd!);
          let rest = '';
          sock.on('data', (x: string) => {
            rest += x;
            if (!rest.includes('\n')) return;
            const cmd = String.fromCharCode(r.byte) + rest.slice(0, rest.indexOf('\n'));
            const req2 = JSON.parse(cmd);
            reply(sock, { return: {}, id: req2.id });
            resolve({ ino, cmd });
          });
          startReading(sock);
          // The stream still counts the read it asked for before the stop as in flight.
          const h = (sock as unknown as { _handle: { reading: boolean; readStart(): number } })._handle;
          if (!h.reading) { h.reading = true; h.readStart(); }
        } catch (e) {
          reject(e);
        }
      };
      sock.setEncoding('utf8').on('data', onData);
    });
    server.listen(path);
    servers.push(server);
  });
  const qmp = await QmpClient.connect(path);
  const fd = openSync(file, 'r');
  try {
    await qmp.sendFd(fd, 'tap0fd');
    const { ino, cmd } = await got;
    assert.is(ino, fstatSync(fd).ino);
    assert.equal(JSON.parse(cmd).execute, 'getfd');
    assert.equal(JSON.parse(cmd).arguments, { fdname: 'tap0fd' });
  } finally {
    closeSync(fd);
    await qmp.close();
  }
});

test.after(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

test.run();
