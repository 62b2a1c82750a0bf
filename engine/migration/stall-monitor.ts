// The engine's own event-loop stalls, per migration phase: the longest time the loop could not
// run (so no TAP queue was read), as query-migrate's `x-switchover-max-stall-ms`. A gate that
// sees frames dropped at a TAP queue needs to know whether the VM itself stopped reading; QEMU
// has no such field, hence the x-switchover- prefix.
// Uses Node's event-loop delay histogram, sampled by a 1 ms libuv timer in C++ (no JS runs
// per sample).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

const RESOLUTION_MS = 1;

export class StallMonitor {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private current: string | null = null;
  private readonly maxByPhase: Record<string, number> = {};

  constructor() { this.h.enable(); }

  /** Closes the phase that ran until now and starts measuring `name`. */
  phase(name: string): void {
    this.close();
    this.current = name;
  }

  /** Longest stall per phase so far, ms (the phase under way included). */
  report(): Record<string, number> {
    const out = { ...this.maxByPhase };
    if (this.current !== null) out[this.current] = Math.max(out[this.current] ?? 0, this.sampleMs());
    return out;
  }

  stop(): void {
    this.close();
    this.h.disable();
  }

  private close(): void {
    if (this.current !== null) this.maxByPhase[this.current] = Math.max(this.maxByPhase[this.current] ?? 0, this.sampleMs());
    this.h.reset();
  }

  /** The histogram holds whole timer intervals: a stall is what exceeds the resolution. */
  private sampleMs(): number {
    if (this.h.count === 0) return 0;
    return Math.round(Math.max(0, this.h.max / 1e6 - RESOLUTION_MS) * 10) / 10;
  }
}
