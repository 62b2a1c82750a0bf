// QMP steps the engine tests share, on lib/qmp-client.ts: wait for a migration status, set
// capabilities, read a guest UDP port's counters, take the error a command answered with, and
// send what the protocol's types forbid.
import { QmpError, type QmpClient } from '../../lib/qmp-client.js';
import type {
  GuestUdpCounters, MigrationCapabilityName, MigrationInfo, MigrationStatus, QmpCommandName,
} from '../../lib/qmp-protocol.js';

/** Polls query-migrate (every `pollMs`) until its status is one of `want`. */
export async function waitStatus(q: QmpClient, want: MigrationStatus[], timeoutMs = 60_000, pollMs = 30): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await q.execute('query-migrate');
    if (info.status && want.includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration status ${info.status} after ${timeoutMs} ms, wanted ${want.join('|')}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function setCaps(q: QmpClient, caps: MigrationCapabilityName[]): Promise<void> {
  await q.execute('migrate-set-capabilities', { capabilities: caps.map((capability) => ({ capability, state: true })) });
}

/** The guest's counters of UDP port 9 (the sink) or 7 (the echo). */
export async function guestUdp(q: QmpClient, port: 7 | 9 = 9): Promise<GuestUdpCounters> {
  const c = (await q.execute('x-query-guest-net')).udp.find((u) => u.port === port);
  if (!c) throw new Error(`x-query-guest-net has no counters for UDP port ${port}`);
  return c;
}

/** The QMP error a command answered with; throws when it succeeded or failed otherwise. */
export async function qmpError(p: Promise<unknown>): Promise<QmpError> {
  const r = await p.then(() => 'succeeded', (e: unknown) => e);
  if (r instanceof QmpError) return r;
  throw new Error(`expected a QMP error reply; the command ${r === 'succeeded' ? 'succeeded' : `failed otherwise: ${String(r)}`}`);
}

/** A command with arguments the protocol's types forbid: what a careless client could send. */
export function executeUnchecked(q: QmpClient, command: string, args?: Record<string, unknown>): Promise<unknown> {
  return q.execute(command as QmpCommandName, args as never);
}
