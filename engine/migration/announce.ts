// QEMU's self-announce after migration: RARP frames from the NIC's MAC so switches and
// bridges learn the VM's new port, on a growing schedule (net/announce.c:
// announce_self_create, qemu_announce_self, qemu_announce_timer_step), and the guest's
// gratuitous ARP (what a virtio-net guest sends when VIRTIO_NET_S_ANNOUNCE is raised).

/** QEMU's AnnounceParameters; defaults are the migration parameters' (migration/options.c). */
export interface AnnounceParams { initial: number; max: number; rounds: number; step: number }
export const ANNOUNCE_DEFAULTS: Readonly<AnnounceParams> = { initial: 50, max: 550, rounds: 5, step: 100 };

/**
 * Delay in ms before each round. As qemu_announce_self does, the first round goes out at
 * once; after it, round r (0-based, r >= 1) waits initial + (r - 1) * step, capped at max
 * (qemu_announce_timer_step). Defaults give [0, 50, 150, 250, 350].
 */
export function announceDelays(p: AnnounceParams): number[] {
  const out: number[] = [];
  for (let r = 0; r < p.rounds; r++) {
    if (r === 0) { out.push(0); continue; }
    let d = p.initial + (r - 1) * p.step;
    if (d < 0 || d > p.max) d = p.max;
    out.push(d);
  }
  return out;
}

/** Checks announce parameters with QEMU's ranges and messages (migration/options.c migrate_params_check). */
export function checkAnnounceParams(p: AnnounceParams): void {
  const check = (name: string, v: number, lo: number, hi: number, shown = lo): void => {
    if (!(Number.isInteger(v) && v >= lo && v <= hi)) {
      throw new Error(`Parameter 'announce_${name}' expects a value between ${shown} and ${hi}`);
    }
  };
  check('initial', p.initial, 0, 100_000);
  check('max', p.max, 0, 100_000);
  check('rounds', p.rounds, 0, 1000);
  check('step', p.step, 1, 10_000, 0); // QEMU refuses 0 but its message says 0
}

/**
 * Runs the announce rounds: calls `round(n)` (n = 1..rounds) on QEMU's schedule; the
 * caller sends its frames there (rarpFrame per NIC, then the guest's gratuitous ARP).
 * start() runs round 1 synchronously. cancel() stops the rest (a new announce-self, or
 * the VM stopping); `finished` resolves after the last round or on cancel.
 */
export class Announcer {
  readonly finished: Promise<void>;
  private readonly delays: number[];
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private resolve!: () => void;
  private started = false;
  /** Rounds emitted so far. */
  sent = 0;

  constructor(params: AnnounceParams, private readonly round: (n: number) => void) {
    this.delays = announceDelays(params);
    this.finished = new Promise((r) => { this.resolve = r; });
  }

  start(): void {
    if (this.started) throw new Error('announce already started');
    this.started = true;
    this.fire();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.next = this.delays.length;
    this.resolve();
  }

  private fire(): void {
    this.timer = undefined;
    if (this.next >= this.delays.length) { this.resolve(); return; }
    this.next++;
    this.sent++;
    this.round(this.sent);
    if (this.next >= this.delays.length) { this.resolve(); return; }
    this.timer = setTimeout(() => this.fire(), this.delays[this.next]);
  }
}
