// A QMP monitor on a UNIX socket, as QEMU's monitor/qmp.c speaks it: greeting, capabilities
// negotiation, one JSON object per line in each direction, `id` echoed, events broadcast to
// every negotiated client with QEMU's timestamp shape. Any number of clients at once. A bad
// line gets an error reply and the connection goes on.
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { QmpErrorClass, QmpGreeting, QmpTimestamp } from './qmp-protocol.js';

/** Longest accepted request line; QEMU's JSON lexer caps tokens similarly (MAX_TOKEN_SIZE). */
export const MAX_LINE_BYTES = 1 << 20;

/** A command failure with its QMP error class. */
export class QmpError extends Error {
  constructor(readonly errorClass: QmpErrorClass, desc: string) {
    super(desc);
    this.name = 'QmpError';
  }
}

export type QmpDispatch = (command: string, args: Record<string, unknown>) => unknown | Promise<unknown>;

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
  private pending = '';
  private discarding = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly sock: net.Socket, private readonly dispatch: QmpDispatch) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
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
  }

  close(): void { this.sock.destroy(); }

  private onData(chunk: string): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.discarding) { this.discarding = false; this.pending = ''; continue; }
      const line = this.pending + piece;
      this.pending = '';
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) { this.tooLong(); continue; }
      this.onLine(line);
    }
    if (this.discarding) return;
    this.pending += chunk.slice(start);
    if (Buffer.byteLength(this.pending) > MAX_LINE_BYTES) {
      this.pending = '';
      this.discarding = true;
      this.tooLong();
    }
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
    this.chain = this.chain.then(() => this.handle(req)).catch((e: Error) => this.send({ error: { class: 'GenericError', desc: e.message } }));
  }

  private async handle(req: unknown): Promise<void> {
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
      this.send({ error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      return;
    }
    const r = req as Record<string, unknown>;
    const idPart = 'id' in r ? { id: r.id } : {};
    const fail = (cls: QmpErrorClass, desc: string): void => this.send({ error: { class: cls, desc }, ...idPart });
    const execute = r.execute ?? r['exec-oob'];
    if (execute === undefined) return fail('GenericError', "QMP input lacks member 'execute'");
    if (typeof execute !== 'string') return fail('GenericError', "QMP input member 'execute' must be a string");
    for (const k of Object.keys(r)) {
      if (!['execute', 'arguments', 'id'].includes(k)) return fail('GenericError', `QMP input member '${k}' is unexpected`);
    }
    if (r.arguments !== undefined && (typeof r.arguments !== 'object' || r.arguments === null || Array.isArray(r.arguments))) {
      return fail('GenericError', "QMP input member 'arguments' must be an object");
    }
    const args = (r.arguments ?? {}) as Record<string, unknown>;
    if (execute === 'qmp_capabilities') {
      if (this.negotiated) return fail('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
      const enable = args.enable;
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
  emit(event: string, data?: Record<string, unknown>): void {
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
