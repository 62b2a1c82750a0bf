// Process-level cleanup registry: teardown must run on SIGINT and SIGTERM too, not only on
// normal exit and errors (those are `finally` blocks). Handlers run newest first, bounded in
// time, then the process exits with the conventional 128+signal code (130, 143).
//
// API
//   onExit(fn) -> unregister()   register an async cleanup; signal handlers are installed
//                                while at least one cleanup is registered
//   runExitHandlers()            run and clear them all now (used by the signal path)
type Cleanup = () => Promise<void> | void;

const handlers = new Set<Cleanup>();
const CLEANUP_BUDGET_MS = 15_000;
let cleaning: Promise<void> | undefined;

const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

function onSignal(signal: 'SIGINT' | 'SIGTERM'): void {
  // A second Ctrl-C while cleaning must not abort the teardown half way.
  const done = runExitHandlers();
  const budget = new Promise<void>((resolve) => setTimeout(resolve, CLEANUP_BUDGET_MS).unref());
  void Promise.race([done, budget]).finally(() => process.exit(SIGNAL_EXIT[signal]));
}
const sigint = (): void => onSignal('SIGINT');
const sigterm = (): void => onSignal('SIGTERM');

export function onExit(fn: Cleanup): () => void {
  if (handlers.size === 0 && !cleaning) {
    process.on('SIGINT', sigint);
    process.on('SIGTERM', sigterm);
  }
  handlers.add(fn);
  return () => {
    handlers.delete(fn);
    if (handlers.size === 0 && !cleaning) {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
    }
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
