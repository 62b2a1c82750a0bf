// The migration channel: one stream socket (UNIX or TCP) carrying the stream from source to
// destination and the return path back, as QEMU's socket migration does
// (migration/socket.c). URIs are QEMU's: `unix:PATH`, `tcp:HOST:PORT`.
import { rmSync } from 'node:fs';
import net from 'node:net';

export type MigrationAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** Parses a migration URI; throws with QEMU's wording for anything else. */
export function parseMigrationUri(uri: string): MigrationAddress {
  if (uri.startsWith('unix:') && uri.length > 5) return { kind: 'unix', path: uri.slice(5) };
  const m = /^tcp:(\[[^\]]*\]|[^:]*):(\d+)$/.exec(uri);
  if (m) {
    const port = Number(m[2]);
    if (port > 65535) throw new Error(`invalid port in migration URI '${uri}'`);
    return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port };
  }
  throw new Error(`unknown migration protocol: ${uri} (use unix:PATH or tcp:HOST:PORT)`);
}

/**
 * One connected migration socket. send() respects backpressure: it resolves once the socket
 * accepted the bytes into a non-full buffer, so a sender that awaits it yields to the event
 * loop (the guest keeps answering frames during precopy).
 */
export class MigrationChannel {
  /** Bytes handed to the socket. */
  bytesSent = 0;
  private closedErr: Error | null = null;
  private readonly closeWaiters: Array<() => void> = [];

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay?.(true);
    socket.on('error', (e) => { this.closedErr ??= e; });
    socket.on('close', () => {
      this.closedErr ??= new Error('migration channel closed by the peer');
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  static connect(uri: string): Promise<MigrationChannel> {
    const addr = parseMigrationUri(uri);
    return new Promise((resolve, reject) => {
      const s = addr.kind === 'unix' ? net.connect(addr.path) : net.connect(addr.port, addr.host);
      s.once('error', (e: NodeJS.ErrnoException) => {
        reject(new Error(`Failed to connect to '${uri}': ${e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'Connection refused (nobody listens there: start the destination with -incoming first)' : e.message}`, { cause: e }));
      });
      s.once('connect', () => { s.removeAllListeners('error'); resolve(new MigrationChannel(s)); });
    });
  }

  get closed(): boolean { return this.closedErr !== null; }
  get error(): Error | null { return this.closedErr; }

  /** Writes `buf`; resolves when the socket can take more, rejects when the channel is gone. */
  send(buf: Buffer): Promise<void> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    this.bytesSent += buf.length;
    if (this.socket.write(buf)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.socket.off('drain', onDrain);
        const i = this.closeWaiters.indexOf(onClose);
        if (i >= 0) this.closeWaiters.splice(i, 1);
      };
      const onDrain = (): void => { done(); resolve(); };
      const onClose = (): void => { done(); reject(this.closedErr!); };
      this.socket.on('drain', onDrain);
      this.closeWaiters.push(onClose);
    });
  }

  /** Resolves when everything written so far has been handed to the kernel. */
  flushed(): Promise<void> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    return new Promise((resolve, reject) => {
      this.socket.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }

  onData(cb: (chunk: Buffer) => void): void { this.socket.on('data', cb); }

  /** Called once when the channel closes (peer gone, cut, or destroyed here). */
  onClose(cb: () => void): void {
    if (this.closed && this.socket.destroyed) { queueMicrotask(cb); return; }
    this.closeWaiters.push(cb);
  }

  destroy(): void { this.socket.destroy(); }
}

/** A listening incoming-migration endpoint: accepts one connection, then stops listening. */
export class IncomingListener {
  private constructor(private readonly server: net.Server, private readonly addr: MigrationAddress) {}

  static listen(uri: string, onChannel: (ch: MigrationChannel) => void): Promise<IncomingListener> {
    const addr = parseMigrationUri(uri);
    return new Promise((resolve, reject) => {
      let accepted = false;
      const server = net.createServer((sock) => {
        if (accepted) { sock.destroy(); return; }
        accepted = true;
        l.close();
        onChannel(new MigrationChannel(sock));
      });
      const l = new IncomingListener(server, addr);
      server.once('error', (e) => reject(new Error(`Failed to listen for incoming migration on '${uri}': ${e.message}`, { cause: e })));
      if (addr.kind === 'unix') {
        rmSync(addr.path, { force: true });
        server.listen(addr.path, () => resolve(l));
      } else {
        server.listen(addr.port, addr.host, () => resolve(l));
      }
    });
  }

  close(): void {
    this.server.close();
    if (this.addr.kind === 'unix') rmSync(this.addr.path, { force: true });
  }
}
