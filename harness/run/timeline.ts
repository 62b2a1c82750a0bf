// The run's timeline, owned by the runner: it fixes the time origin (t0, when hop 1 issued
// `migrate`) and records every phase, every harness mark and every QMP event, on one clock
// (ms since the epoch, lib/qmp-client.ts nowMs, the clock the captures' timestamps share).
// Steps never write here: a hop returns its marks (Mark[]) and the runner records them.
import { nowMs, type RecordedEvent } from '../../lib/qmp-client.js';
import type { TimelineEvent } from '../scenario/types.js';

/** A harness step at time t (ms epoch). */
export interface Mark { t: number; what: string }

/** A QMP event's own timestamp, ms since the epoch. */
export const eventMs = (e: RecordedEvent): number => e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;

export class Timeline {
  private origin?: number;
  private readonly entries: TimelineEvent[] = [];
  /** The runner's phases (`booting source`, `migrating`, ...) as they began. */
  readonly phases: Mark[] = [];

  /** t0, once fixed (ms epoch). */
  get t0(): number | undefined { return this.origin; }

  /** Fix the origin; it is fixed once, by the first hop's `migrate`. */
  fix(t0: number): void {
    if (this.origin !== undefined) throw new Error(`the timeline's t0 is already fixed at ${this.origin}: fix it once`);
    this.origin = t0;
  }

  phase(name: string, t = nowMs()): void { this.phases.push({ t, what: name }); }

  mark(what: string, t = nowMs()): void { this.entries.push({ t, source: 'harness', what }); }

  marks(list: readonly Mark[]): void { for (const m of list) this.mark(m.what, m.t); }

  /** A VM's QMP event, at its own timestamp; MIGRATION and MIGRATION_PASS with their status or pass. */
  event(source: 'src' | 'dst', ev: RecordedEvent): void {
    const data = ev.event === 'MIGRATION' ? ` ${(ev.data as { status: string }).status}`
      : ev.event === 'MIGRATION_PASS' ? ` ${(ev.data as { pass: number }).pass}` : '';
    this.entries.push({ t: eventMs(ev), source, what: `${ev.event}${data}` });
  }

  /** Everything recorded, in time order, as ms relative to t0 (to the first entry when the
   * run never migrated): what the result and the report show. */
  relative(): TimelineEvent[] {
    const sorted = [...this.entries].sort((a, b) => a.t - b.t);
    const origin = this.origin ?? sorted[0]?.t ?? 0;
    return sorted.map((e) => ({ ...e, t: e.t - origin }));
  }

  /** Absolute entries and phases, for the trace. */
  absolute(): { t0?: number; phases: Mark[]; entries: TimelineEvent[] } {
    return { ...(this.origin !== undefined ? { t0: this.origin } : {}), phases: [...this.phases], entries: [...this.entries].sort((a, b) => a.t - b.t) };
  }
}
