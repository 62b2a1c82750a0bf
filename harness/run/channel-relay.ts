// A relay the harness puts between source and destination when a scenario cuts the
// migration channel: the source migrates to the relay's UNIX socket, the relay forwards
// bytes both ways (stream and return path) to the destination's socket, and cut() destroys
// both halves at once — a real broken connection for either backend. Fds cannot cross it,
// so local (fd-passing) migration never goes through a relay.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

export interface ChannelRelay {
  /** The socket path the source should migrate to. */
  readonly path: string;
  /** Bytes forwarded source -> destination so far. */
  readonly forwarded: () => number;
  cut(): void;
  close(): Promise<void>;
}

export async function startRelay(listenPath: string, targetPath: string): Promise<ChannelRelay> {
  const sockets = new Set<Socket>();
  let bytes = 0;
  let cutDone = false;
  const server: Server = createServer((src) => {
    if (cutDone) { src.destroy(); return; }
    const dst = createConnection(targetPath);
    sockets.add(src).add(dst);
    src.on('data', (d: Buffer) => { bytes += d.length; });
    src.pipe(dst);
    dst.pipe(src);
    const end = (): void => { src.destroy(); dst.destroy(); };
    src.on('error', end).on('close', end);
    dst.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPath, () => resolve());
  });
  return {
    path: listenPath,
    forwarded: () => bytes,
    cut(): void {
      cutDone = true;
      for (const s of sockets) s.destroy();
    },
    close(): Promise<void> {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => { rmSync(listenPath, { force: true }); resolve(); }));
    },
  };
}
