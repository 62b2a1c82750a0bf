// What a VM process supports, asked over QMP the same way of qemu-system-x86_64 and of the engine,
// so a patched QEMU and the engine are recognised by the same answers.
//
// API
//   probeQmpFeatures(qmp) -> { version, capabilities, parameters, incomingFds }   any connected QMP peer
//   patchedForLocal(features) -> boolean   the local-migration series is there (`local` + `incoming-fds`)
import type { QmpClient } from '../../lib/qmp-client.js';
import type { BackendFeatures } from '../scenario/types.js';

/**
 * The migration capabilities and parameters, and whether any object type of the schema has an
 * `incoming-fds` member: QEMU masks type names in query-qmp-schema, so NetdevTapOptions is found
 * by its member, not its name.
 */
export async function probeQmpFeatures(qmp: QmpClient): Promise<Omit<BackendFeatures, 'accelerator' | 'vhost'>> {
  const v = qmp.greeting.QMP.version.qemu;
  const caps = await qmp.execute('query-migrate-capabilities');
  const params = await qmp.execute('query-migrate-parameters');
  const schema = await qmp.execute('query-qmp-schema', undefined, { timeoutMs: 30_000 });
  return {
    version: `${v.major}.${v.minor}.${v.micro}`,
    capabilities: caps.map((c) => c.capability),
    parameters: Object.keys(params),
    incomingFds: schema.some((t) => t.members?.some((m) => m.name === 'incoming-fds')),
  };
}

/** A build with the local-migration series: the `local` parameter and tap's `incoming-fds`. */
export function patchedForLocal(f: Pick<BackendFeatures, 'parameters' | 'incomingFds'>): boolean {
  return f.parameters.includes('local') && f.incomingFds;
}
