// The engine VM's QEMU-shaped command line (what follows `switchover vm`, DESIGN.md "Engine"),
// built once for the harness's engine backend, the bench and the engine's own tests.
//
// API
//   engineArgv({ name?, memMB?, qmpPath, nic?, guest?, incoming?, paused? }) -> string[]
//        -name, -m, -netdev/-device (with nic), -guest, -qmp, -incoming, -S, in that order;
//        throws when a value would break a QemuOpts list (a comma)

export interface EngineNic {
  /** The TAP to open by name; leave out with incomingFds (the TAP arrives from the stream). */
  ifname?: string;
  /** TAP queues (multi-queue above 1). Default 1. */
  queues?: number;
  vhost?: boolean;
  /** Local migration's destination: wait for the source's TAP fds (tap incoming-fds=on). */
  incomingFds?: boolean;
  mac?: string;
  /** virtio-net-pci local-migration=on|off; the engine's default when left out. */
  localMigration?: boolean;
}

export interface EngineGuest {
  /** A.B.C.D/N */
  ip?: string;
  gw?: string;
  /** Pages dirtied per second while running. */
  dirtyRate?: number;
  /** Fraction of pages given random content at boot. */
  fill?: number;
}

export interface EngineVmOptions {
  name?: string;
  memMB?: number;
  /** The QMP socket the VM listens on. */
  qmpPath: string;
  nic?: EngineNic;
  guest?: EngineGuest;
  /** -incoming: defer, unix:PATH or tcp:HOST:PORT. */
  incoming?: string;
  /** -S: start stopped (prelaunch, or paused after an incoming migration). */
  paused?: boolean;
}

/** A value for a QemuOpts list, which cannot carry an unescaped comma. */
function noComma(vm: string, what: string, value: string | number): string {
  const v = String(value);
  if (v.includes(',')) throw new Error(`VM ${vm}: ${what} ${JSON.stringify(v)} contains a comma, which QEMU-style options cannot take`);
  return v;
}

const pair = (vm: string, key: string, value: string | number): string => `${key}=${noComma(vm, key, value)}`;

export function engineArgv(o: EngineVmOptions): string[] {
  const vm = o.name ?? '(unnamed)';
  const argv: string[] = [];
  if (o.name !== undefined) argv.push('-name', o.name);
  if (o.memMB !== undefined) argv.push('-m', `${o.memMB}M`);
  if (o.nic) {
    const n = o.nic;
    if (n.incomingFds && n.ifname !== undefined) throw new Error(`VM ${vm}: a NIC with incomingFds gets its TAP from the migration stream; leave out ifname`);
    const netdev = ['tap', 'id=n0'];
    if (n.ifname !== undefined) netdev.push(pair(vm, 'ifname', n.ifname));
    netdev.push('script=no', 'downscript=no');
    if (n.queues !== undefined && n.queues > 1) netdev.push(pair(vm, 'queues', n.queues));
    if (n.vhost) netdev.push('vhost=on');
    if (n.incomingFds) netdev.push('incoming-fds=on');
    const device = ['virtio-net-pci', 'netdev=n0'];
    if (n.mac !== undefined) device.push(pair(vm, 'mac', n.mac));
    if (n.localMigration !== undefined) device.push(`local-migration=${n.localMigration ? 'on' : 'off'}`);
    argv.push('-netdev', netdev.join(','), '-device', device.join(','));
  }
  if (o.guest) {
    const g = o.guest;
    const guest: string[] = [];
    if (g.ip !== undefined) guest.push(pair(vm, 'ip', g.ip));
    if (g.gw !== undefined) guest.push(pair(vm, 'gw', g.gw));
    if (g.dirtyRate !== undefined) guest.push(pair(vm, 'dirty-rate', g.dirtyRate));
    if (g.fill) guest.push(pair(vm, 'fill', g.fill));
    argv.push('-guest', guest.join(','));
  }
  argv.push('-qmp', `unix:${noComma(vm, 'QMP path', o.qmpPath)},server=on,wait=off`);
  if (o.incoming) argv.push('-incoming', noComma(vm, 'incoming', o.incoming));
  if (o.paused) argv.push('-S');
  return argv;
}
