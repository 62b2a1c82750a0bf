// A QMP monitor on a UNIX socket, as QEMU's monitor/qmp.c speaks it: greeting, capabilities
// negotiation, one JSON object per line in each direction, `id` echoed, events broadcast to
// every negotiated client with QEMU's timestamp shape. Any number of clients at once. A bad
// line gets an error reply and the connection goes on.
//
// Memory is bounded per client whatever it sends (issue 18): as QEMU's monitor suspends a
// client with QMP_REQ_QUEUE_LEN_MAX requests queued (monitor/qmp.c), reading stops while
// MAX_QUEUED_REQUESTS requests are pending or OUT_HIGH_WATER bytes of output wait for the
// client; requests then wait in the kernel's socket buffer. Events are not requests: a client
// that never reads and lets OUT_LIMIT bytes pile up is dropped, with a line on stderr.
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { QmpErrorClass, QmpEventName, QmpEvents, QmpGreeting, QmpTimestamp } from '../../lib/qmp-protocol.js';

/** Longest accepted request line; QEMU's JSON lexer caps tokens similarly (MAX_TOKEN_SIZE). */
export const MAX_LINE_BYTES = 1 << 20;
/** QEMU's QMP_REQ_QUEUE_LEN_MAX. */
export const MAX_QUEUED_REQUESTS = 8;
/** Output waiting for the client above which no further request is read. */
export const OUT_HIGH_WATER = 64 * 1024;
/** Output waiting for the client above which the client is dropped. */
export const OUT_LIMIT = 1 << 20;

/** A command failure with its QMP error class. */
export class QmpError extends Error {
  constructor(readonly errorClass: QmpErrorClass, desc: string) {
    super(desc);
    this.name = 'QmpError';
  }
}

export type QmpDispatch = (command: string, args: Record<string, unknown>) => unknown | Promise<unknown>;

/** emit's data argument: required when the event has data, optional when it has none. */
export type EventData<E extends QmpEventName> = {} extends QmpEvents[E] ? [data?: QmpEvents[E]] : [data: QmpEvents[E]];

/** Sends a QMP event (lib/qmp-protocol.ts QmpEvents) to every monitor. */
export type EventSink = <E extends QmpEventName>(event: E, ...data: EventData<E>) => void;

/** Wall-clock time with microseconds, QEMU's event timestamp (qemu_get_timedate via g_get_real_time). */
export function qmpTimestamp(nowUs = Math.round((performance.timeOrigin + performance.now()) * 1000)): QmpTimestamp {
  return { seconds: Math.floor(nowUs / 1e6), microseconds: nowUs % 1e6 };
}

const MAX_NESTING = 1024;

/** Deepest [ / { nesting outside strings; stops counting once past the limit. */
function nestingDepth(line: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) { if (++depth > max) { max = depth; if (max > MAX_NESTING) return max; } }
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

const GREETING: QmpGreeting = {
  QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'switchover-engine' }, capabilities: ['oob'] },
};

class QmpConnection {
  negotiated = false;
  /** Received text from `pos` on not handled yet: whole lines, then at most a partial one. */
  private input = '';
  private pos = 0;
  /** Inside a line longer than MAX_LINE_BYTES: drop everything up to its newline. */
  private discarding = false;
  /** Requests read and not answered yet. */
  private queued = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly sock: net.Socket, private readonly dispatch: QmpDispatch) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => { this.input += chunk; this.pump(); });
    sock.on('drain', () => this.pump());
    sock.on('error', () => { /* the client went away; nothing to tell it */ });
    this.send(GREETING);
  }

  /** Never throws: a reply that cannot be serialised becomes an error reply. */
  send(obj: unknown): void {
    if (this.sock.destroyed || !this.sock.writable) return;
    let text: string;
    try {
      text = JSON.stringify(obj);
    } catch (e) {
      text = JSON.stringify({ error: { class: 'GenericError', desc: `cannot encode reply: ${(e as Error).message}` } });
    }
    this.sock.write(`${text}\r\n`);
    if (this.sock.writableLength > OUT_LIMIT) {
      process.stderr.write(`switchover-vm: QMP client dropped: it left ${this.sock.writableLength} bytes of replies and events unread (limit ${OUT_LIMIT})\n`);
      this.sock.destroy();
    }
  }

  close(): void { this.sock.destroy(); }

  private congested(): boolean {
    return this.queued >= MAX_QUEUED_REQUESTS || this.sock.writableLength >= OUT_HIGH_WATER;
  }

  /** Handles whole lines while the client is not congested; reads on only when all are handled. */
  private pump(): void {
    while (!this.congested() && !this.sock.destroyed) {
      const nl = this.input.indexOf('\n', this.pos);
      if (nl < 0) break;
      const line = this.input.slice(this.pos, nl);
      this.pos = nl + 1;
      if (this.discarding) { this.discarding = false; continue; }
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) { this.tooLong(); continue; }
      this.onLine(line);
    }
    this.input = this.input.slice(this.pos);
    this.pos = 0;
    const wholeLine = this.input.includes('\n');
    // (a string's UTF-8 is at most 3 bytes per UTF-16 unit: most partial lines skip the count)
    if (!wholeLine && (this.discarding || (this.input.length * 3 > MAX_LINE_BYTES && Buffer.byteLength(this.input) > MAX_LINE_BYTES))) {
      if (!this.discarding) this.tooLong();
      this.discarding = true;
      this.input = '';
    }
    if (wholeLine || this.congested()) this.sock.pause();
    else this.sock.resume();
  }

  private tooLong(): void {
    this.send({ error: { class: 'GenericError', desc: `JSON parse error, request longer than ${MAX_LINE_BYTES} bytes` } });
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    // QEMU's JSON streamer refuses nesting deeper than MAX_NESTING (qobject/json-streamer.c).
    if (nestingDepth(line) > MAX_NESTING) {
      this.send({ error: { class: 'GenericError', desc: 'JSON parse error, JSON nesting depth limit exceeded' } });
      return;
    }
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch (e) {
      this.send({ error: { class: 'GenericError', desc: `JSON parse error, ${(e as Error).message}` } });
      return;
    }
    // Replies go out in request order even when a command completes asynchronously.
    this.queued++;
    this.chain = this.chain.then(() => this.handle(req)).catch((e: Error) => this.send({ error: { class: 'GenericError', desc: e.message } }))
      .finally(() => { this.queued--; this.pump(); });
  }

  private async handle(req: unknown): Promise<void> {
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
      this.send({ error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      return;
    }
    const r = req as Record<string, unknown>;
    const idPart = Object.hasOwn(r, 'id') ? { id: r.id } : {};
    const fail = (cls: QmpErrorClass, desc: string): void => this.send({ error: { class: cls, desc }, ...idPart });
    const execute = Object.hasOwn(r, 'execute') ? r.execute : Object.hasOwn(r, 'exec-oob') ? r['exec-oob'] : undefined;
    if (execute === undefined) return fail('GenericError', "QMP input lacks member 'execute'");
    if (typeof execute !== 'string') return fail('GenericError', "QMP input member 'execute' must be a string");
    for (const k of Object.keys(r)) {
      if (!['execute', 'arguments', 'id'].includes(k)) return fail('GenericError', `QMP input member '${k}' is unexpected`);
    }
    const rawArgs = Object.hasOwn(r, 'arguments') ? r.arguments : undefined;
    if (rawArgs !== undefined && (typeof rawArgs !== 'object' || rawArgs === null || Array.isArray(rawArgs))) {
      return fail('GenericError', "QMP input member 'arguments' must be an object");
    }
    const args = (rawArgs ?? {}) as Record<string, unknown>;
    if (execute === 'qmp_capabilities') {
      if (this.negotiated) return fail('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
      const unexpected = Object.keys(args).find((k) => k !== 'enable');
      if (unexpected !== undefined) return fail('GenericError', `Parameter '${unexpected}' is unexpected`);
      const enable = Object.hasOwn(args, 'enable') ? args.enable : undefined;
      if (enable !== undefined && (!Array.isArray(enable) || enable.some((c) => c !== 'oob'))) {
        return fail('GenericError', "Parameter 'enable' expects a list of QMPCapability ('oob')");
      }
      this.negotiated = true;
      this.send({ return: {}, ...idPart });
      return;
    }
    if (!this.negotiated) return fail('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
    try {
      const ret = await this.dispatch(execute, args);
      this.send({ return: ret ?? {}, ...idPart });
    } catch (e) {
      if (e instanceof QmpError) fail(e.errorClass, e.message);
      else fail('GenericError', (e as Error).message ?? String(e));
    }
  }
}

export class QmpServer {
  private readonly server: net.Server;
  private readonly conns = new Set<QmpConnection>();

  private constructor(readonly path: string, dispatch: QmpDispatch) {
    this.server = net.createServer((sock) => {
      const c = new QmpConnection(sock, dispatch);
      this.conns.add(c);
      sock.on('close', () => this.conns.delete(c));
    });
  }

  /** Listens on `path` (a stale socket file is replaced, as QEMU's unix_listen does), mode 0600. */
  static async listen(path: string, dispatch: QmpDispatch): Promise<QmpServer> {
    const s = new QmpServer(path, dispatch);
    rmSync(path, { force: true });
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', (e) => reject(new Error(`-qmp unix:${path}: cannot listen: ${e.message}`, { cause: e })));
        s.server.listen(path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    return s;
  }

  /** Broadcasts an event to negotiated clients; QEMU omits `data` when an event has none. */
  emit<E extends QmpEventName>(event: E, ...[data]: EventData<E>): void {
    const msg = data && Object.keys(data).length
      ? { timestamp: qmpTimestamp(), event, data }
      : { timestamp: qmpTimestamp(), event };
    for (const c of this.conns) if (c.negotiated) c.send(msg);
  }

  close(): void {
    for (const c of this.conns) c.close();
    this.server.close();
    rmSync(this.path, { force: true });
  }
}
