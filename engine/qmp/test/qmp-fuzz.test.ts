// A bounded, seeded fuzz run over a live engine VM's QMP socket (issue 9, "Bad input"): random
// and truncated JSON, non-object JSON, unknown commands, wrong argument types, deep nesting,
// binary garbage and lines beyond the engine's line limit. FUZZ_CASES cases (2,000 by
// default), FUZZ_SEED to change the seed. The VM must never crash or hang (after every batch a
// fresh connection negotiates and query-status answers), and every rejection must be an
// `error` with a QEMU error class and a non-empty description (qapi/qmp-dispatch.c shape).
// The VM runs without a NIC (-S, no -netdev), so no netns or TAP is needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_LINE_BYTES } from '../server.js';
import { SeededRandom } from '../../../fixtures/seeded-random.js';

const BIN = fileURLToPath(new URL('../../../../bin/switchover.js', import.meta.url));
const CASES = Number(process.env.FUZZ_CASES ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed9);
const BATCH = 100;
const REPLY_TIMEOUT_MS = 15_000;
const ERROR_CLASSES = ['GenericError', 'CommandNotFound', 'DeviceNotActive', 'DeviceNotFound', 'KVMMissingCap'];

interface Reply { [k: string]: unknown }

/** A raw QMP connection: lines out, parsed replies in, with a sentinel to close each case. */
class RawQmp {
  private buf = '';
  private readonly queue: Reply[] = [];
  private wake: (() => void) | null = null;
  closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.queue.push(JSON.parse(line) as Reply);
      }
      this.wake?.();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => { this.closed = true; this.wake?.(); });
  }

  static async open(path: string, negotiate = true): Promise<RawQmp> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(path, () => resolve(s));
      s.once('error', reject);
    });
    const q = new RawQmp(sock);
    const greeting = await q.next(REPLY_TIMEOUT_MS, 'the QMP greeting');
    assert.ok('QMP' in greeting, `greeting: ${JSON.stringify(greeting)}`);
    if (negotiate) {
      q.send('{"execute":"qmp_capabilities"}\n');
      const r = await q.next(REPLY_TIMEOUT_MS, 'the qmp_capabilities reply');
      assert.ok('return' in r, `qmp_capabilities: ${JSON.stringify(r)}`);
    }
    return q;
  }

  send(data: string | Buffer): void { this.sock.write(data); }

  async next(timeoutMs: number, what: string): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) throw new Error(`QMP connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no QMP reply within ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
      });
    }
  }

  /** Sends one case line, then a tagged query-status; returns every reply before the sentinel's. */
  async exchange(line: string | Buffer, tag: string): Promise<Reply[]> {
    this.send(line);
    this.send(`{"execute":"query-status","id":${JSON.stringify(tag)}}\n`);
    const replies: Reply[] = [];
    for (;;) {
      const m = await this.next(REPLY_TIMEOUT_MS, `the reply to ${tag}`);
      if (m.id === tag) {
        assert.ok('return' in m, `sentinel ${tag} failed: ${JSON.stringify(m)}`);
        return replies;
      }
      if (!('event' in m)) replies.push(m);
    }
  }

  close(): void { this.sock.destroy(); }
}

interface LiveVm { child: ChildProcess; dir: string; qmpPath: string; stderr: () => string; exit: { code: number | null; signal: string | null } | null }

async function startVm(): Promise<LiveVm> {
  const dir = mkdtempSync(join(tmpdir(), 'swfuzz-'));
  const qmpPath = join(dir, 'qmp.sock');
  const child = spawn(process.execPath, [BIN, 'vm', '-name', 'fuzz', '-m', '16M', '-qmp', `unix:${qmpPath},server=on,wait=off`, '-S'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-8000); });
  const vm: LiveVm = { child, dir, qmpPath, stderr: () => err, exit: null };
  child.on('exit', (code, signal) => { vm.exit = { code, signal }; });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      (await RawQmp.open(qmpPath)).close();
      return vm;
    } catch (e) {
      if (vm.exit || Date.now() > deadline) {
        await stopVm(vm);
        throw new Error(`engine VM did not start: ${(e as Error).message}\n${err}`, { cause: e });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function stopVm(vm: LiveVm): Promise<void> {
  if (!vm.exit) {
    const gone = new Promise((r) => vm.child.once('exit', r));
    vm.child.kill('SIGKILL');
    await gone;
  }
  rmSync(vm.dir, { recursive: true, force: true });
}

// ---- case generators --------------------------------------------------------------------

/** Commands with fixed argument types (engine/main.ts, engine/migration/migration.ts); none-arg ones take an extra. */
const TYPED: Record<string, Record<string, 'str' | 'int' | 'number' | 'bool' | 'array'>> = {
  migrate: { uri: 'str', detach: 'bool', resume: 'bool' },
  'migrate-incoming': { uri: 'str' },
  'migrate-continue': { state: 'str' },
  'migrate-set-capabilities': { capabilities: 'array' },
  'migrate-set-parameters': { 'downtime-limit': 'int', 'max-bandwidth': 'int', 'announce-rounds': 'int', local: 'bool' },
  'announce-self': { initial: 'int', max: 'int', rounds: 'int', step: 'int' },
  'x-guest-udp-send': { dst: 'str', port: 'int', rate: 'number', count: 'int' },
};
const NO_ARGS = ['query-status', 'query-name', 'stop', 'cont', 'quit', 'query-migrate', 'migrate_cancel',
  'query-migrate-capabilities', 'query-migrate-parameters', 'x-query-guest-net', 'x-query-ram-digest'];
const KNOWN = new Set([...Object.keys(TYPED), ...NO_ARGS, 'qmp_capabilities', 'netdev_add', 'netdev_del', 'device_add',
  'device_del', 'getfd', 'closefd', 'query-qmp-schema', 'exec-oob']);

function randomScalar(r: SeededRandom): unknown {
  switch (r.int(0, 6)) {
    case 0: return r.int(-1e9, 1e9);
    case 1: return r.next() * 1e6 - 5e5;
    case 2: return r.text(r.int(0, 12));
    case 3: return r.next() < 0.5;
    case 4: return null;
    case 5: return [];
    default: return {};
  }
}

function randomJson(r: SeededRandom, depth = 0): unknown {
  if (depth > 3 || r.next() < 0.4) return randomScalar(r);
  if (r.next() < 0.5) return Array.from({ length: r.int(0, 4) }, () => randomJson(r, depth + 1));
  return Object.fromEntries(Array.from({ length: r.int(0, 4) }, () => [r.text(r.int(1, 8)), randomJson(r, depth + 1)]));
}

function wrongValue(r: SeededRandom, type: string): unknown {
  for (;;) {
    const v = randomScalar(r);
    const ok = type === 'str' ? typeof v === 'string'
      : type === 'int' ? Number.isInteger(v)
        : type === 'number' ? typeof v === 'number'
          : type === 'bool' ? typeof v === 'boolean'
            : Array.isArray(v);
    if (!ok) return v;
  }
}

function unknownCommand(r: SeededRandom): string {
  for (;;) {
    const name = r.pick(['', 'x-', 'query-', 'migrate-', 'QUERY-']) + r.text(r.int(1, 20));
    if (!KNOWN.has(name)) return name;
  }
}

/** A request the engine must refuse (no fuzz case may be a valid command: `quit` must not run). */
function rejectedRequest(r: SeededRandom): Record<string, unknown> {
  const id = r.next() < 0.5 ? { id: r.pick<unknown>([r.int(0, 1e6), r.text(6), { n: r.int(0, 9) }]) } : {};
  switch (r.int(0, 3)) {
    case 0: return { execute: unknownCommand(r), ...(r.next() < 0.5 ? { arguments: randomJson(r) } : {}), ...id };
    case 1: {
      const cmd = r.pick(Object.keys(TYPED));
      const spec = TYPED[cmd]!;
      const field = r.pick(Object.keys(spec));
      return { execute: cmd, arguments: { [field]: wrongValue(r, spec[field]!) }, ...id };
    }
    case 2: return { execute: r.pick(NO_ARGS), arguments: { [r.text(r.int(1, 10))]: randomScalar(r) }, ...id };
    default: {
      // Broken framing of the request itself: execute of a wrong type, arguments not an object, extra members.
      const shape = r.int(0, 2);
      if (shape === 0) return { execute: wrongValue(r, 'str'), ...id };
      if (shape === 1) return { execute: r.pick(NO_ARGS), arguments: r.pick<unknown>([[], 'x', 1, null, true]), ...id };
      return { execute: r.pick(NO_ARGS), [`x${r.text(4)}`]: randomScalar(r), ...id };
    }
  }
}

function nested(depth: number, open: string, close: string, inner = ''): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

type Category = 'non-object' | 'no-execute' | 'rejected-command' | 'truncated' | 'deep-nesting' | 'binary' | 'huge';

interface Case { category: Category; line: string | Buffer; describe: string }

function makeCase(r: SeededRandom, n: number): Case {
  // A huge line every 200 cases keeps the run bounded (each is over 1 MiB).
  if (n % 200 === 199) {
    const size = MAX_LINE_BYTES + r.int(1, 4 * MAX_LINE_BYTES);
    return { category: 'huge', line: `{"execute":"query-status","arguments":{"pad":"${'x'.repeat(size)}"}}\n`, describe: `${size}-byte line` };
  }
  const category = r.pick<Category>(['non-object', 'no-execute', 'rejected-command', 'rejected-command', 'truncated', 'deep-nesting', 'binary']);
  switch (category) {
    case 'non-object': {
      let v: unknown;
      do v = randomJson(r); while (typeof v === 'object' && v !== null && !Array.isArray(v));
      const line = JSON.stringify(v);
      return { category, line: `${line}\n`, describe: line.slice(0, 80) };
    }
    case 'no-execute': {
      const v = randomJson(r, 3);
      const base = v && typeof v === 'object' && !Array.isArray(v) ? v : {};
      const obj = Object.fromEntries(Object.entries(base).filter(([k]) => k !== 'execute' && k !== 'exec-oob'));
      const line = JSON.stringify({ ...obj, [r.text(5)]: randomScalar(r) });
      return { category, line: `${line}\n`, describe: line.slice(0, 80) };
    }
    case 'rejected-command': {
      const line = JSON.stringify(rejectedRequest(r));
      return { category, line: `${line}\n`, describe: line.slice(0, 120) };
    }
    case 'truncated': {
      for (;;) {
        const full = JSON.stringify(rejectedRequest(r));
        const cut = full.slice(0, r.int(1, full.length - 1));
        let parses = true;
        try { JSON.parse(cut); } catch { parses = false; }
        if (!parses && cut.trim()) return { category, line: `${cut}\n`, describe: cut.slice(0, 120) };
      }
    }
    case 'deep-nesting': {
      // QEMU refuses nesting beyond 1024 (qobject/json-streamer.c MAX_NESTING) at parse time.
      const depth = r.pick([100, 1025, 5000, 50_000, 200_000]);
      const where = r.int(0, 3);
      const inner = nested(depth, '[', ']');
      const line = where === 0 ? inner
        : where === 1 ? nested(depth, '{"a":', '}', '1')
          : where === 2 ? `{"execute":"query-status","arguments":{"deep":${inner}}}`
            : `{"execute":"${unknownCommand(r)}","id":${inner}}`;
      return { category, line: `${line}\n`, describe: `depth ${depth} ${['top-level array', 'top-level object', 'in arguments', 'in id'][where]}` };
    }
    case 'binary': {
      const bytes = r.bytes(r.int(1, 2048));
      for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) bytes[i] = 0x2a;
      bytes[0] = 0x7b; // at least one non-blank byte, so the server must answer the line
      return { category, line: Buffer.concat([bytes, Buffer.from('\n')]), describe: `${bytes.length} random bytes` };
    }
    default: throw new Error(`unhandled category ${category}`);
  }
}

/** A rejection in QMP's shape: `error` with a known class and a non-empty description. */
function checkRejection(reply: Reply, c: Case, n: number): void {
  const where = `case ${n} (${c.category}: ${c.describe})`;
  assert.ok(!('return' in reply), `${where} was accepted: ${JSON.stringify(reply).slice(0, 200)}`);
  const err = reply.error as { class?: unknown; desc?: unknown } | undefined;
  assert.ok(err && typeof err === 'object', `${where}: reply has no error object: ${JSON.stringify(reply).slice(0, 200)}`);
  assert.ok(typeof err.class === 'string' && ERROR_CLASSES.includes(err.class), `${where}: error class ${JSON.stringify(err.class)}`);
  assert.ok(typeof err.desc === 'string' && err.desc.trim().length > 0, `${where}: empty error desc`);
}

/** Each test gets its own VM, so a crash found by one does not hide what the others check. */
async function withVm(fn: (vm: LiveVm) => Promise<void>): Promise<void> {
  const vm = await startVm();
  try {
    await fn(vm);
  } finally {
    await stopVm(vm);
  }
}

/** Why a case got no answer: the VM's exit and stderr if it died (give it a moment to). */
async function postMortem(vm: LiveVm): Promise<string> {
  for (let i = 0; i < 20 && !vm.exit; i++) await new Promise((r) => setTimeout(r, 100));
  return vm.exit ? `the VM exited (${vm.exit.signal ?? `code ${vm.exit.code}`}); stderr:\n${vm.stderr()}` : 'the VM is alive but did not answer';
}

test(`${CASES} fuzz cases (seed ${SEED}): every one refused with a classed error, the VM never crashes or hangs`, () => withVm(async (vm) => {
  const r = new SeededRandom(SEED);
  const counts: Record<string, number> = {};
  let conn = await RawQmp.open(vm.qmpPath);
  try {
    for (let n = 0; n < CASES; n++) {
      const c = makeCase(r, n);
      counts[c.category] = (counts[c.category] ?? 0) + 1;
      let replies: Reply[];
      try {
        replies = await conn.exchange(c.line, `sentinel-${n}`);
      } catch (e) {
        throw new Error(`case ${n} (${c.category}: ${c.describe}): ${(e as Error).message}; ${await postMortem(vm)}`, { cause: e });
      }
      assert.is(replies.length, 1, `case ${n} (${c.category}: ${c.describe}): expected one reply, got ${JSON.stringify(replies).slice(0, 300)}`);
      checkRejection(replies[0]!, c, n);
      if ((n + 1) % BATCH === 0) {
        // A fresh connection proves the monitor as a whole still works, not just this session.
        const fresh = await RawQmp.open(vm.qmpPath);
        const status = await fresh.exchange('', `batch-${n}`).then(() => 'ok');
        fresh.close();
        assert.is(status, 'ok');
        assert.is(vm.exit, null, `VM exited after case ${n}: ${vm.stderr()}`);
        conn.close();
        conn = await RawQmp.open(vm.qmpPath);
      }
    }
  } finally {
    conn.close();
  }
  console.log(`qmp fuzz: ${CASES} cases, seed ${SEED}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.is(vm.exit, null, `VM exited: ${vm.stderr()}`);
}));

test('a command before capabilities negotiation is refused with CommandNotFound, and negotiation still works', () => withVm(async (vm) => {
  const q = await RawQmp.open(vm.qmpPath, false);
  try {
    q.send('{"execute":"query-status","id":1}\n');
    const refused = await q.next(REPLY_TIMEOUT_MS, 'the reply to query-status before negotiation');
    assert.is((refused.error as { class?: string } | undefined)?.class, 'CommandNotFound', JSON.stringify(refused));
    assert.is(refused.id, 1);
    q.send('{"execute":"qmp_capabilities"}\n');
    const ok = await q.next(REPLY_TIMEOUT_MS, 'the qmp_capabilities reply');
    assert.ok('return' in ok, JSON.stringify(ok));
  } finally {
    q.close();
  }
}));

test('a request just over the line limit is refused as too long, whatever the chunking', () => withVm(async (vm) => {
  // The limit must hold for the line as a whole, including when the newline arrives in the
  // same read as the bytes that cross the limit (a check of only the part carried over from
  // earlier reads would miss it).
  const q = await RawQmp.open(vm.qmpPath);
  try {
    for (const over of [1, 100, 4096, 60_000, MAX_LINE_BYTES]) {
      const prefix = '{"execute":"query-status","id":"big","arguments":{"pad":"';
      const suffix = '"}}';
      const pad = MAX_LINE_BYTES + over - prefix.length - suffix.length;
      const replies = await q.exchange(`${prefix}${'x'.repeat(pad)}${suffix}\n`, `huge-${over}`);
      assert.is(replies.length, 1, `line ${over} byte(s) over the limit: ${JSON.stringify(replies).slice(0, 300)}`);
      const desc = String((replies[0]!.error as { desc?: unknown } | undefined)?.desc ?? JSON.stringify(replies[0]));
      assert.match(desc, /longer than/, `line ${over} byte(s) over the ${MAX_LINE_BYTES}-byte limit was not refused as too long: ${desc.slice(0, 200)}`);
    }
  } finally {
    q.close();
  }
  assert.is(vm.exit, null, `VM exited: ${vm.stderr()}`);
}));

test.run();
