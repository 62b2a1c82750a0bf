// A QMP client over a UNIX socket, typed with lib/qmp-protocol.ts, for both backends
// (the engine VM and qemu-system-x86_64). Wire format as in QEMU's docs/interop/qmp-spec.rst:
// one JSON object per line; a greeting, then `qmp_capabilities`, then commands whose replies
// come back in order (we also tag each with an `id`) interleaved with events.
//
// API
//   QmpClient.connect(path, { timeoutMs, signal?, transcript? }) -> Promise<QmpClient>   retries
//        until the socket exists and accepts (or `signal` aborts), reads the greeting, negotiates;
//        `transcript` sees every line of the conversation from the greeting on
//   client.execute(cmd, args?, { timeoutMs? }) -> Promise<ret>     QmpError / QmpTimeoutError /
//        QmpProtocolError
//   client.events: RecordedEvent[]       every event, with QEMU's timestamp and receivedAt (ms epoch),
//        a union discriminated by `event`, so `ev.event === 'MIGRATION'` types `ev.data`
//   client.on(event | '*', fn) -> off()
//   client.waitEvent(name, predicate?, timeoutMs?, since?) -> Promise<RecordedEvent>
//        looks at events[since..] first (since defaults to "from now"), then waits
//   client.sendFd(fd, fdname, { timeoutMs? })  SCM_RIGHTS + `getfd`, as libvirt passes TAP fds
//   client.close()
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type {
  QmpCommandName, QmpCommands, QmpErrorClass, QmpEventName, QmpEvents, QmpGreeting, QmpTimestamp,
} from './qmp-protocol.js';

/** QEMU answered with an error object: its class and description are kept. */
export class QmpError extends Error {
  constructor(readonly command: string, readonly errorClass: QmpErrorClass | string, readonly desc: string) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
  /** QEMU's spelling of the field. */
  get class(): string { return this.errorClass; }
}

/** The peer broke the protocol (bad JSON, no greeting, closed connection). */
export class QmpProtocolError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QmpProtocolError';
  }
}

export class QmpTimeoutError extends Error {
  constructor(what: string, readonly timeoutMs: number) {
    super(`QMP ${what}: no answer within ${timeoutMs} ms`);
    this.name = 'QmpTimeoutError';
  }
}

interface EventRecord<E extends QmpEventName> {
  event: E;
  data: QmpEvents[E];
  /** QEMU's own timestamp (wall clock of the VM process). */
  timestamp: QmpTimestamp;
  /** Local receive time, ms since the epoch with sub-ms precision. */
  receivedAt: number;
}

/** A received event; without a type argument, the union of all of them (narrowed by `event`). */
export type RecordedEvent<E extends QmpEventName = QmpEventName> = { [K in E]: EventRecord<K> }[E];

/** One message of the conversation, when it was sent or received (t: nowMs()). */
export interface QmpTranscriptEntry { t: number; dir: 'command' | 'reply' | 'event' | 'greeting'; msg: unknown }
export type QmpTranscript = (e: QmpTranscriptEntry) => void;

type Args<C extends QmpCommandName> = QmpCommands[C]['args'];
type Ret<C extends QmpCommandName> = QmpCommands[C]['ret'];
interface ExecuteOptions { timeoutMs?: number }
type ExecuteRest<C extends QmpCommandName> = undefined extends Args<C> ? [args?: Args<C>, opts?: ExecuteOptions]
  : {} extends Args<C> ? [args?: Args<C>, opts?: ExecuteOptions] : [args: Args<C>, opts?: ExecuteOptions];
type Listener = (ev: RecordedEvent) => void;

interface Pending {
  id: string; command: string;
  resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_LINE_BYTES = 16 * 1024 * 1024; // a reply larger than this is a broken peer, not data
const RETRY_MS = 25;

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function truncate(s: string, n = 200): string {
  return s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s;
}

export class QmpClient {
  readonly events: RecordedEvent[] = [];
  greeting!: QmpGreeting;
  private buf = '';
  private readonly pending: Pending[] = [];
  private readonly listeners = new Map<string, Set<Listener>>();
  private nextId = 1;
  private writing: Promise<void> = Promise.resolve();
  private closedError?: Error;
  private greetingWaiter?: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void };
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket, readonly path: string, private readonly transcript?: QmpTranscript) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.fail(this.closedError ?? new QmpProtocolError(`QMP connection to ${path} closed`));
        resolve();
      });
    });
    socket.on('error', (e) => { this.closedError ??= new QmpProtocolError(`QMP socket ${path}: ${e.message}`, { cause: e }); });
  }

  /** Connect (retrying while the socket does not exist or refuses), read greeting, negotiate. */
  static async connect(path: string, opts: { timeoutMs?: number; signal?: AbortSignal; transcript?: QmpTranscript } = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let lastError: Error | undefined;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = netConnect(path);
          s.once('connect', () => { s.off('error', reject); resolve(s); });
          s.once('error', reject);
        });
        const client = new QmpClient(socket, path, opts.transcript);
        try {
          client.greeting = await client.readGreeting(Math.max(1, deadline - Date.now()));
          await client.execute('qmp_capabilities', {}, { timeoutMs: Math.max(1, deadline - Date.now()) });
        } catch (e) {
          client.close();
          throw e;
        }
        return client;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
        lastError = e as Error;
      }
      if (opts.signal?.aborted) throw new QmpProtocolError(`connect to ${path} abandoned`, { cause: opts.signal.reason });
      if (Date.now() + RETRY_MS > deadline) {
        throw new QmpTimeoutError(`connect to ${path} (${lastError?.message ?? 'no socket'}); is the VM running? see its log`, timeoutMs);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  private readGreeting(timeoutMs: number): Promise<QmpGreeting> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new QmpTimeoutError(`greeting on ${this.path}`, timeoutMs)), timeoutMs);
      this.greetingWaiter = {
        resolve: (g) => { clearTimeout(timer); resolve(g); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /** Arguments are required exactly when the command has a required member (lib/qmp-protocol.ts). */
  execute<C extends QmpCommandName>(command: C, ...[args, opts = {}]: ExecuteRest<C>): Promise<Ret<C>> {
    return this.send(command, args, opts.timeoutMs) as Promise<Ret<C>>;
  }

  private send(command: string, args: unknown, timeoutMs = DEFAULT_TIMEOUT_MS,
    beforeWrite?: (line: string) => Promise<string>): Promise<unknown> {
    if (this.closedError || this.socket.destroyed) {
      return Promise.reject(new QmpProtocolError(`QMP ${command}: connection to ${this.path} is closed`, { cause: this.closedError }));
    }
    const id = `so-${this.nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.pending.findIndex((p) => p.id === id);
        if (i >= 0) this.pending.splice(i, 1);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      const p: Pending = { id, command, resolve, reject, timer };
      this.pending.push(p);
      // Writes are serialised so a command split around an fd (sendFd) is never interleaved.
      this.writing = this.writing.then(async () => {
        let line = JSON.stringify(msg) + '\n';
        if (beforeWrite) line = await beforeWrite(line);
        if (line) this.socket.write(line);
        this.transcript?.({ t: nowMs(), dir: 'command', msg });
      }).catch((e: Error) => this.settle(p, e));
    });
  }

  /**
   * Pass `fd` to the VM under `fdname`: the first byte of the `getfd` command carries the fd
   * (SCM_RIGHTS), as libvirt does; QEMU takes the fd that came with the command naming it
   * (monitor/fds.c qmp_getfd). Uses lib/fd-passing.ts, since Node cannot send fds on a
   * plain stream socket.
   */
  async sendFd(fd: number, fdname: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    // Loaded on first use: it brings in the FFI, which plain QMP does not need.
    const { sendFd: sendFdOverSocket, socketFd } = await import('./fd-passing.js');
    const sockFd = socketFd(this.socket);
    await this.send('getfd', { fdname }, opts.timeoutMs, async (line) => {
      // Node's write queue must be empty, or the fd byte would overtake earlier commands.
      if (this.socket.writableLength > 0) await once(this.socket, 'drain');
      await sendFdOverSocket(sockFd, fd, line.charCodeAt(0));
      return line.slice(1);
    });
  }

  on<E extends QmpEventName>(event: E, fn: (ev: RecordedEvent<E>) => void): () => void;
  on(event: '*', fn: (ev: RecordedEvent) => void): () => void;
  on(event: string, fn: (ev: never) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as unknown as Listener);
    return () => set!.delete(fn as unknown as Listener);
  }

  /** The first event `name` (matching `predicate`) at or after index `since` of `events`. */
  waitEvent<E extends QmpEventName>(name: E, predicate?: (data: QmpEvents[E]) => boolean,
    timeoutMs = DEFAULT_TIMEOUT_MS, since = this.events.length): Promise<RecordedEvent<E>> {
    const matches = (ev: RecordedEvent): boolean => ev.event === name && (!predicate || predicate(ev.data as QmpEvents[E]));
    for (let i = since; i < this.events.length; i++) {
      const ev = this.events[i]!;
      if (matches(ev)) return Promise.resolve(ev as RecordedEvent<E>);
    }
    if (this.closedError || this.socket.destroyed) {
      return Promise.reject(new QmpProtocolError(`waiting for ${name} on ${this.path}: connection closed`, { cause: this.closedError }));
    }
    return new Promise((resolve, reject) => {
      const done = (): void => { clearTimeout(timer); off(); this.socket.off('close', onClose); };
      const off = this.on('*', (ev) => { if (matches(ev)) { done(); resolve(ev as RecordedEvent<E>); } });
      const onClose = (): void => { done(); reject(new QmpProtocolError(`waiting for ${name} on ${this.path}: connection closed`)); };
      const timer = setTimeout(() => { done(); reject(new QmpTimeoutError(`event ${name}`, timeoutMs)); }, timeoutMs);
      this.socket.once('close', onClose);
    });
  }

  close(): Promise<void> {
    this.closedError ??= new QmpProtocolError(`QMP connection to ${this.path} closed by us`);
    this.socket.end();
    this.socket.destroy();
    return this.closed;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    if (this.buf.length > MAX_LINE_BYTES && !this.buf.includes('\n')) {
      this.closedError = new QmpProtocolError(`QMP peer ${this.path} sent a line over ${MAX_LINE_BYTES} bytes`);
      this.socket.destroy();
      return;
    }
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>;
    const t = nowMs();
    try {
      const parsed: unknown = JSON.parse(line);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      msg = parsed as Record<string, unknown>;
    } catch (e) {
      this.transcript?.({ t, dir: this.greetingWaiter ? 'greeting' : 'reply', msg: line });
      // Replies come in order, so a garbled line is the answer to the oldest command.
      const err = new QmpProtocolError(`QMP peer ${this.path} sent a malformed line: ${truncate(line)}`, { cause: e });
      if (this.greetingWaiter) this.takeGreetingWaiter().reject(err);
      else this.settle(this.pending[0], err);
      return;
    }
    this.transcript?.({ t, dir: this.greetingWaiter ? 'greeting' : typeof msg.event === 'string' ? 'event' : 'reply', msg });
    if (this.greetingWaiter) {
      const waiter = this.takeGreetingWaiter();
      if (msg.QMP && typeof msg.QMP === 'object') waiter.resolve(msg as unknown as QmpGreeting);
      else waiter.reject(new QmpProtocolError(`QMP peer ${this.path} sent no greeting: ${truncate(line)}`));
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp as QmpTimestamp | undefined;
      const ev = {
        event: msg.event, data: (msg.data ?? {}) as never, receivedAt: t,
        timestamp: ts && typeof ts.seconds === 'number' ? ts : { seconds: -1, microseconds: -1 },
      } as RecordedEvent;
      this.events.push(ev);
      for (const key of [ev.event, '*']) for (const fn of [...(this.listeners.get(key) ?? [])]) fn(ev);
      return;
    }
    const p = (msg.id !== undefined && this.pending.find((x) => x.id === msg.id)) || (msg.id === undefined ? this.pending[0] : undefined);
    if (!p) return; // the answer to a command that already timed out
    if ('return' in msg) {
      this.settle(p, undefined, msg.return);
    } else if (msg.error && typeof msg.error === 'object') {
      const e = msg.error as { class?: unknown; desc?: unknown };
      this.settle(p, new QmpError(p.command, String(e.class ?? 'GenericError'), String(e.desc ?? '')));
    } else {
      this.settle(p, new QmpProtocolError(`QMP ${p.command}: reply has neither return nor error: ${truncate(line)}`));
    }
  }

  private takeGreetingWaiter(): { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } {
    const w = this.greetingWaiter!;
    this.greetingWaiter = undefined;
    return w;
  }

  private settle(p: Pending | undefined, err?: Error, value?: unknown): void {
    if (!p) return;
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  private fail(err: Error): void {
    if (this.greetingWaiter) this.takeGreetingWaiter().reject(err);
    for (const p of [...this.pending]) this.settle(p, new QmpProtocolError(`QMP ${p.command}: ${err.message}`, { cause: err }));
  }
}
