// `--backend engine|qemu [--qemu PATH]` to a VmBackend, for every command that runs VMs.
import { UsageError, type CommandSpec } from './args.js';
import type { VmBackend } from '../scenario/types.js';

export async function backendFor(name: string, qemuPath: string | undefined, command: CommandSpec): Promise<VmBackend> {
  if (name === 'qemu') return (await import('../vm/qemu.js')).qemuBackend(qemuPath ? { binary: qemuPath } : {});
  if (name !== 'engine') throw new UsageError(`--backend ${JSON.stringify(name)}: expected engine or qemu`, command);
  if (qemuPath) throw new UsageError('--qemu only applies to --backend qemu', command);
  return (await import('../vm/engine.js')).engineBackend;
}
