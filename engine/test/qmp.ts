// A small QMP client for the engine's own tests (the harness has its own; the engine must not
// depend on it): connect, negotiate, execute with id matching, and wait for events.
import net from 'node:net';

export interface QmpMessage { [k: string]: unknown }

export class TestQmp {
  readonly events: QmpMessage[] = [];
  private buf = '';
  private nextId = 1;
  private readonly waiting = new Map<number, (m: QmpMessage) => void>();
  private eventWaiters: Array<() => void> = [];
  private closed = false;
  greeting: QmpMessage | undefined;

  private constructor(readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onMessage(JSON.parse(line) as QmpMessage);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => { this.closed = true; for (const w of this.eventWaiters) w(); });
  }

  /** Connects (retrying while the socket does not exist yet) and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 15000, negotiate = true): Promise<TestQmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(path, () => resolve(s));
          s.once('error', reject);
        });
        const q = new TestQmp(sock);
        await q.waitFor(() => q.greeting !== undefined, 5000, 'QMP greeting');
        if (negotiate) await q.ok('qmp_capabilities');
        return q;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`QMP connect to ${path} failed: ${(e as Error).message}`, { cause: e });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private onMessage(m: QmpMessage): void {
    if ('QMP' in m) this.greeting = m;
    else if ('event' in m) this.events.push(m);
    else if (typeof m.id === 'number' && this.waiting.has(m.id)) {
      this.waiting.get(m.id)!(m);
      this.waiting.delete(m.id);
    }
    const ws = this.eventWaiters;
    this.eventWaiters = [];
    for (const w of ws) w();
  }

  /** Sends a raw line (for malformed-input tests). */
  sendRaw(line: string): void { this.sock.write(line); }

  /** Waits for the next reply without an id match (for raw lines). */
  async nextUntagged(timeoutMs = 5000): Promise<QmpMessage> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no QMP reply')), timeoutMs);
      const orig = this.onMessage.bind(this);
      this.onMessage = (m) => {
        if (!('event' in m) && !('QMP' in m) && m.id === undefined) { clearTimeout(t); this.onMessage = orig; resolve(m); return; }
        orig(m);
      };
    });
  }

  execute(cmd: string, args?: Record<string, unknown>, timeoutMs = 30000): Promise<QmpMessage> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiting.delete(id); reject(new Error(`QMP ${cmd}: no reply in ${timeoutMs} ms`)); }, timeoutMs);
      this.waiting.set(id, (m) => { clearTimeout(t); resolve(m); });
      this.sock.write(`${JSON.stringify({ execute: cmd, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Executes and returns `return`, throwing on an error reply. */
  async ok<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T> {
    const r = await this.execute(cmd, args);
    if ('error' in r) throw new Error(`QMP ${cmd} failed: ${JSON.stringify(r.error)}`);
    return r.return as T;
  }

  async waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.closed) throw new Error(`QMP connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.eventWaiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** Waits for an event (optionally with data matching `status`) not yet consumed; returns it. */
  async waitEvent(name: string, status?: string, timeoutMs = 30000): Promise<QmpMessage> {
    let found: QmpMessage | undefined;
    await this.waitFor(() => {
      found = this.events.find((e) => e.event === name && (status === undefined || (e.data as { status?: string } | undefined)?.status === status));
      return !!found;
    }, timeoutMs, `event ${name}${status ? ` ${status}` : ''}`);
    return found!;
  }

  close(): void { this.sock.destroy(); }
}
