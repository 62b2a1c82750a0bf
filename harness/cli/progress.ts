// Progress on long runs: the current scenario, its phase and the elapsed time. On a TTY one
// live line redrawn in place (\r, erase line) and ticking; otherwise (CI logs, pipes) a plain
// line per change, which reads well in a log:
//   [12.3s] netpass-bridge-ping: migrating
// It writes to stderr by default, so stdout stays the table or JSON.

export interface ProgressStream { write(text: string): unknown; isTTY?: boolean; columns?: number }

export interface ProgressOptions {
  stream?: ProgressStream;
  /** Live line or plain lines; default: whether the stream is a TTY. */
  tty?: boolean;
  now?: () => number;
  /** How often the live line's clocks tick. */
  tickMs?: number;
}

const ERASE_LINE = '\r\x1b[K';

export class Progress {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly started: number;
  private readonly ticker: NodeJS.Timeout | undefined;
  private current: { name: string; position: string; phase: string; since: number } | undefined;

  constructor(options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? Boolean(this.stream.isTTY);
    this.now = options.now ?? Date.now;
    this.started = this.now();
    if (this.tty) {
      this.ticker = setInterval(() => this.draw(), options.tickMs ?? 200);
      this.ticker.unref();
    }
  }

  private stamp(): string {
    return `[${((this.now() - this.started) / 1000).toFixed(1)}s]`;
  }

  private draw(): void {
    if (!this.current) return;
    const c = this.current;
    const line = `${this.stamp()} ${c.position}${c.name}: ${c.phase} (${((this.now() - c.since) / 1000).toFixed(1)}s)`;
    const width = Math.max(20, (this.stream.columns ?? 80) - 1);
    this.stream.write(`${ERASE_LINE}${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
  }

  /** A scenario begins; `index` is 1-based. */
  scenarioStart(name: string, index?: number, total?: number): void {
    const position = index !== undefined && total !== undefined ? `${index}/${total} ` : '';
    this.current = { name, position, phase: 'starting', since: this.now() };
    if (this.tty) this.draw();
    else this.stream.write(`${this.stamp()} ${name}: starting${position ? ` (${position.trim()})` : ''}\n`);
  }

  /** The current scenario entered a phase: topology, launching, traffic, migrating, analyzing, teardown... */
  phase(phase: string): void {
    if (!this.current) return;
    this.current.phase = phase;
    if (this.tty) this.draw();
    else this.stream.write(`${this.stamp()} ${this.current.name}: ${phase}\n`);
  }

  /** The current scenario ended; one permanent line either way. */
  scenarioEnd(verdict: string): void {
    if (!this.current) return;
    const line = `${this.stamp()} ${this.current.name}: ${verdict} in ${((this.now() - this.current.since) / 1000).toFixed(1)}s\n`;
    this.stream.write(this.tty ? `${ERASE_LINE}${line}` : line);
    this.current = undefined;
  }

  /** Stops the ticking and leaves the terminal on a clean line. */
  close(): void {
    if (this.ticker) clearInterval(this.ticker);
    if (this.tty && this.current) this.stream.write(ERASE_LINE);
    this.current = undefined;
  }
}
