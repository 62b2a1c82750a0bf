// Process-level cleanup registry: teardown must run on every terminating signal too (SIGINT,
// SIGTERM, SIGHUP when the terminal goes, SIGQUIT), not only on normal exit and errors (those
// are `finally` blocks). Handlers run newest first, bounded in time, then the process exits
// with the conventional 128+signal code (130, 143, 129, 131). SIGKILL cannot be caught:
// `switchover cleanup` (cleanup-command.ts) removes what such a run left. A crash
// (an uncaught exception or unhandled rejection, which skips every `finally` still pending)
// is reported as Node would, cleaned up the same way, and exits 1.
//
// API
//   onExit(fn) -> unregister()   register an async cleanup; signal handlers are installed
//                                while at least one cleanup is registered
//   runExitHandlers()            run and clear them all now (used by the signal path)
type Cleanup = () => Promise<void> | void;

const handlers = new Set<Cleanup>();
const CLEANUP_BUDGET_MS = 15_000;
let cleaning: Promise<void> | undefined;

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, SIGQUIT: 131 } as const;
type TerminatingSignal = keyof typeof SIGNAL_EXIT;

function onSignal(signal: TerminatingSignal): void {
  // A second Ctrl-C while cleaning must not abort the teardown half way.
  const done = runExitHandlers();
  const budget = new Promise<void>((resolve) => setTimeout(resolve, CLEANUP_BUDGET_MS).unref());
  void Promise.race([done, budget]).finally(() => process.exit(SIGNAL_EXIT[signal]));
}
let crashed = false;
function onCrash(err: unknown): void {
  // Once: a crash report that itself fails (stderr gone: EPIPE is emitted as a new uncaught
  // error on the next tick) must not start another report, or the error storm starves the
  // timers and the process never exits (seen with `switchover run ... 2>&1 | head -1`).
  if (crashed) return;
  crashed = true;
  try {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  } catch { /* stderr is gone: the exit code still says it */ }
  const budget = new Promise<void>((resolve) => setTimeout(resolve, CLEANUP_BUDGET_MS).unref());
  void Promise.race([runExitHandlers(), budget]).finally(() => process.exit(1));
}
const hooks: Array<[NodeJS.Signals | 'uncaughtException' | 'unhandledRejection', (arg: unknown) => void]> = [
  ...(Object.keys(SIGNAL_EXIT) as TerminatingSignal[]).map((sig): [NodeJS.Signals, () => void] => [sig, () => onSignal(sig)]),
  ['uncaughtException', onCrash], ['unhandledRejection', onCrash],
];

export function onExit(fn: Cleanup): () => void {
  if (handlers.size === 0 && !cleaning) for (const [ev, h] of hooks) process.on(ev as 'SIGINT', h);
  handlers.add(fn);
  return () => {
    handlers.delete(fn);
    if (handlers.size === 0 && !cleaning) for (const [ev, h] of hooks) process.off(ev as 'SIGINT', h);
  };
}

export function runExitHandlers(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of [...handlers].reverse()) {
      handlers.delete(fn);
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`switchover: cleanup failed: ${(e as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}
