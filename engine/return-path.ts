// The return path: messages from the destination back to the source on the migration
// channel (QEMU's migration/migration.c source_return_path_thread and migrate_send_rp_*).
// The message encoding is engine/migration-stream.ts's (encodeRp / RpDecoder).
import type { MigrationChannel } from './migration-channel.js';
import { encodeRp, RpDecoder, type RpMessage } from './migration-stream.js';

export interface ReturnPathHandlers {
  shut(status: number): void;
  pong(id: number): void;
  vmStarted(): void;
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
      case 'fds-ready': this.h.fdsReady(m.count); break;
      case 'fail': this.h.fail(m.reason); break;
    }
  }
}

/** Destination side: sends return-path messages (a no-op once the channel is gone). */
export class ReturnPathWriter {
  constructor(private readonly channel: MigrationChannel) {}

  send(m: RpMessage): void {
    if (this.channel.closed) return;
    this.channel.socket.write(encodeRp(m));
  }
}
