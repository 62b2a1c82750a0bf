// The return path: messages from the destination back to the source on the migration
// channel (QEMU's migration/migration.c source_return_path_thread and migrate_send_rp_*).
// The message encoding is engine/migration/stream.ts's (encodeRp / RpDecoder).
import type { MigrationChannel } from './channel.js';
import { encodeRp, RpDecoder, type RpMessage } from './stream.js';

export interface ReturnPathHandlers {
  shut(status: number): void;
  pong(id: number): void;
  vmStarted(): void;
  /** x-netpass-trigger=first-tx: the destination guest transmitted; forward the cache. */
  netpassGo(): void;
  fdsReady(count: number): void;
  fail(reason: string): void;
  /** The return path carried something that is not a valid message. */
  invalid(err: Error): void;
}

/** Source side: decodes what the destination sends and calls the handlers. */
export class ReturnPathReader {
  private readonly decoder = new RpDecoder();
  private broken = false;

  constructor(channel: MigrationChannel, private readonly h: ReturnPathHandlers) {
    channel.onData((chunk) => {
      if (this.broken) return;
      let msgs: RpMessage[];
      try {
        msgs = this.decoder.push(chunk);
      } catch (e) {
        this.broken = true;
        h.invalid(e as Error);
        return;
      }
      for (const m of msgs) this.dispatch(m);
    });
  }

  private dispatch(m: RpMessage): void {
    switch (m.type) {
      case 'shut': this.h.shut(m.status); break;
      case 'pong': this.h.pong(m.id); break;
      case 'vm-started': this.h.vmStarted(); break;
      case 'netpass-go': this.h.netpassGo(); break;
      case 'fds-ready': this.h.fdsReady(m.count); break;
      case 'fail': this.h.fail(m.reason); break;
    }
  }
}

/**
 * Return-path bytes the source has not read above which the destination gives up on it. A
 * source reads its return path all the time; one that does not, while it keeps sending ping
 * sections, would otherwise grow the destination without bound (issue 18: 3.9 GB RSS on
 * 80 MiB of pings).
 */
export const RP_OUT_LIMIT = 1 << 20;

/**
 * Destination side: sends return-path messages (a no-op once the channel is gone). PONGs, the
 * one message a source can make the destination send at will, are coalesced into one write per
 * turn: a socket write costs far more memory than its 8 bytes while it waits in the queue.
 * Every other message goes out at once, after the PONGs before it, so order is kept and the
 * caller may end the socket right after a SHUT or FAIL.
 */
export class ReturnPathWriter {
  private pongs: Buffer[] = [];
  private pongBytes = 0;

  constructor(private readonly channel: MigrationChannel) {}

  send(m: RpMessage): void {
    const sock = this.channel.socket;
    if (this.channel.closed || sock.destroyed) return;
    const bytes = encodeRp(m);
    if (sock.writableLength + this.pongBytes + bytes.length > RP_OUT_LIMIT) {
      process.stderr.write(`switchover-vm: return path: the source left ${sock.writableLength + this.pongBytes} bytes unread (limit ${RP_OUT_LIMIT}); closing the migration channel\n`);
      this.pongs = [];
      this.pongBytes = 0;
      this.channel.destroy();
      return;
    }
    if (m.type !== 'pong') {
      this.flush();
      sock.write(bytes);
      return;
    }
    if (!this.pongs.length) queueMicrotask(() => this.flush());
    this.pongs.push(bytes);
    this.pongBytes += bytes.length;
  }

  private flush(): void {
    if (!this.pongs.length) return;
    const sock = this.channel.socket;
    if (!this.channel.closed && !sock.destroyed) sock.write(Buffer.concat(this.pongs, this.pongBytes));
    this.pongs = [];
    this.pongBytes = 0;
  }
}
