// QMP netdev_add / netdev_del / device_add / device_del: the NIC plugged over QMP, as the
// local-migration series' test plugs it (tests/functional/x86_64/test_tap_migration.py,
// add_virtio_net). They go through the command line's own checks (cmdline.ts tapNetdevConfig,
// nicConfig) and the VM's own addNetdev/addNic, so a NIC is the same either way.
//
// Only before the guest has run (prelaunch, or inmigrate before the stream arrives): the engine
// guest has no hotplug, its network stack is built on the NIC. QEMU allows hotplug at any time;
// here the refusal says so. Errors otherwise carry QEMU's classes and wording.
import { nicConfig, OptionError, tapNetdevConfig } from './cmdline.js';
import type { CommandTable } from './qmp/commands.js';
import { QmpError } from './qmp/server.js';
import { TAP_OPTION_TYPES } from './guest/tap-options.js';
import { VmConfigError, type Vm } from './vm.js';
import type { NetdevTapAdd } from '../lib/qmp-protocol.js';

type TapArgSpecs = { [K in keyof typeof TAP_OPTION_TYPES]: { type: (typeof TAP_OPTION_TYPES)[K]; optional: true } };
const TAP_ARGS = Object.fromEntries(Object.entries(TAP_OPTION_TYPES).map(([k, type]) => [k, { type, optional: true }])) as TapArgSpecs;

/** The VM's guest has not run and no migration stream is loading: its NIC may still change. */
export type BeforeGuestRuns = () => boolean;

function guard(before: BeforeGuestRuns, command: string, vm: Vm): void {
  if (!before()) {
    throw new QmpError('GenericError', `${command} is only possible before the guest runs (run state prelaunch, or inmigrate before the migration stream arrives; now ${vm.runState}): the engine guest has no hotplug`);
  }
}

function asQmp(e: unknown): QmpError {
  if (e instanceof VmConfigError) return new QmpError(e.errorClass, e.message);
  if (e instanceof OptionError) return new QmpError('GenericError', e.message);
  return new QmpError('GenericError', (e as Error).message);
}

/**
 * netdev_add's typed arguments as the QemuOpts strings the command line's check takes.
 * fd/fds: QEMU takes getfd names or fd numbers (monitor_fd_param); the engine has no getfd,
 * so a name is never found, and a number is an fd inherited from its parent, as with -netdev.
 */
function tapOpts(a: NetdevTapAdd): Record<string, string> {
  const opts: Record<string, string> = { id: a.id };
  for (const [k, v] of Object.entries(a)) {
    if (k === 'type' || k === 'id' || v === undefined) continue;
    if ((k === 'fd' || k === 'fds') && typeof v === 'string') {
      const name = v.split(':').find((p) => !/^\d+$/.test(p));
      if (name !== undefined) throw new QmpError('GenericError', `File descriptor named '${name}' has not been found`);
    }
    opts[k] = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
  }
  return opts;
}

/** The PCI address syntax of qdev's `addr` property (SLOT[.FN], hex; set_pci_devfn). */
const PCI_ADDR = /^(0x)?[0-9a-f]{1,2}(\.[0-7])?$/i;

export function deviceCommands(vm: Vm, before: BeforeGuestRuns): CommandTable {
  return {
    netdev_add: {
      args: { type: { type: 'str' }, id: { type: 'str' }, ...TAP_ARGS },
      // The engine's netdev_add takes tap only, so its argument object is NetdevTapOptions with
      // Netdev's base (id, type) folded in.
      argType: 'NetdevTapOptions',
      run: (a) => {
        if (a.type !== 'tap') throw new QmpError('GenericError', `Parameter 'type' does not accept value '${String(a.type)}' (this engine has tap)`);
        guard(before, 'netdev_add', vm);
        // net/tap.c net_init_tap_one: vhost needs /dev/vhost-net, which the engine does not emulate.
        if (a.vhost) throw new QmpError('GenericError', 'tap: open vhost char device failed: No such file or directory (the engine has no vhost-net: use vhost=off)');
        try {
          vm.addNetdev(tapNetdevConfig(tapOpts(a), { incoming: vm.runState === 'inmigrate' }));
        } catch (e) {
          throw e instanceof QmpError ? e : asQmp(e);
        }
        return {};
      },
    },
    netdev_del: {
      args: { id: { type: 'str' } },
      run: ({ id }) => {
        guard(before, 'netdev_del', vm);
        try { vm.delNetdev(id); } catch (e) { throw asQmp(e); }
        return {};
      },
    },
    device_add: {
      args: {
        driver: { type: 'str' }, id: { type: 'str', optional: true }, netdev: { type: 'str' }, mac: { type: 'str', optional: true },
        mq: { type: 'bool', optional: true }, 'local-migration': { type: 'bool', optional: true },
        romfile: { type: 'str', optional: true }, vectors: { type: 'int', optional: true },
        bus: { type: 'str', optional: true }, addr: { type: 'str', optional: true }, 'disable-legacy': { type: 'str', optional: true },
      },
      // QOM looks properties up by their exact name (object_property_find): `local_migration`
      // is not `local-migration`.
      unexpected: (name) => `Property 'virtio-net-pci.${name}' not found`,
      run: (a) => {
        if (a.driver !== 'virtio-net-pci') throw new QmpError('GenericError', `'${String(a.driver)}' is not a valid device model name (this engine has virtio-net-pci)`);
        guard(before, 'device_add', vm);
        // The PCI-level properties describe the PCI function, not the NIC: the engine's NIC hands
        // frames to the guest stack with no PCI device, no firmware and no interrupts. So the slot
        // (addr), the MSI-X vector count (vectors) and the virtio transport (disable-legacy) have
        // nothing to act on, and are only checked as QEMU checks them. An option ROM would be a
        // ROM to load, and a bus a PCI bus to find: the engine has neither, so only "no ROM"
        // (romfile="") is taken and any bus is not found.
        if (a.romfile !== undefined && a.romfile !== '') throw new QmpError('GenericError', `romfile '${a.romfile}': the engine loads no option ROM; pass romfile=""`);
        if (a.bus !== undefined) throw new QmpError('GenericError', `Bus '${a.bus}' not found`);
        if (a.addr !== undefined && !PCI_ADDR.test(a.addr)) throw new QmpError('GenericError', `Property 'virtio-net-pci.addr' doesn't take value '${a.addr}'`);
        if (a.vectors !== undefined && (a.vectors < 0 || a.vectors > 0xffffffff)) throw new QmpError('GenericError', `Parameter 'vectors' expects uint32`);
        if (a['disable-legacy'] !== undefined && !['on', 'off', 'auto'].includes(a['disable-legacy'])) {
          throw new QmpError('GenericError', `Parameter 'disable-legacy' does not accept value '${a['disable-legacy']}'`);
        }
        // The engine's NIC reads every queue of its netdev (mq on); mq=off on a multi-queue
        // netdev, where QEMU would use queue 0 only, is not modelled.
        const queues = vm.netdevs.find((n) => n.config.id === a.netdev)?.config.queues ?? 1;
        if (a.mq === false && queues > 1) throw new QmpError('GenericError', `mq=off on netdev '${a.netdev}' with ${queues} queues: the engine's NIC uses every queue; pass mq=on`);
        try {
          vm.addNic(nicConfig({
            netdev: a.netdev, ...(a.id !== undefined ? { id: a.id } : {}), ...(a.mac !== undefined ? { mac: a.mac } : {}),
            ...(a['local-migration'] !== undefined ? { localMigration: a['local-migration'] } : {}),
          }));
        } catch (e) {
          throw asQmp(e);
        }
        return {};
      },
    },
    device_del: {
      args: { id: { type: 'str' } },
      run: ({ id }) => {
        guard(before, 'device_del', vm);
        try { vm.delNic(id); } catch (e) { throw asQmp(e); }
        return {};
      },
    },
  };
}
