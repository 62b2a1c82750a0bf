// `switchover vm ...`: the engine VM process. Parses the QEMU-shaped command line, opens the
// TAPs, starts the QMP monitors and runs until `quit` or a signal. Nothing goes to stdout;
// errors and warnings go to stderr prefixed `switchover-vm:` as QEMU prefixes its own name.
import { CmdlineError, parseCmdline, type VmConfig } from './cmdline.js';
import { UDP_SENDER_LIMITS } from './guest/net.js';
import { ipToInt, isIpv4 } from '../lib/net-addr.js';
import { Migration } from './migration/migration.js';
import { deviceCommands } from './device-commands.js';
import { dispatcher, introspect, type CommandTable } from './qmp/commands.js';
import { QmpError, QmpServer, type EventSink } from './qmp/server.js';
import { Vm } from './vm.js';

const PROG = 'switchover-vm';

function vmCommands(vm: Vm, quit: () => void): CommandTable {
  return {
    'query-status': { args: {}, run: () => vm.status() },
    'query-name': { args: {}, run: () => (vm.config.name !== undefined ? { name: vm.config.name } : {}) },
    stop: { args: {}, run: () => { vm.qmpStop(); return {}; } },
    cont: {
      args: {},
      run: () => {
        try { vm.qmpCont(); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
        return {};
      },
    },
    quit: { args: {}, run: () => { setImmediate(quit); return {}; } },
    'x-query-guest-net': { args: {}, run: () => vm.guest.info() },
    'x-query-ram-digest': {
      args: {},
      run: () => ({ pages: vm.ram.pageCount, 'nonzero-pages': vm.ram.nonZeroPages, digest: vm.ram.digest() }),
    },
    'x-guest-udp-send': {
      args: { dst: { type: 'str' }, port: { type: 'int' }, rate: { type: 'number' }, count: { type: 'int' } },
      run: ({ dst, port, rate, count }) => {
        if (!isIpv4(dst) || ipToInt(dst) === 0) throw new QmpError('GenericError', `Parameter 'dst' expects an IPv4 address`);
        if (port < 1 || port > 65535) throw new QmpError('GenericError', `Parameter 'port' expects a value in 1..65535`);
        const { maxRate, maxCount } = UDP_SENDER_LIMITS;
        if (!(rate > 0 && rate <= maxRate)) throw new QmpError('GenericError', `Parameter 'rate' expects packets/s in (0, ${maxRate}]`);
        if (count < 1 || count > maxCount) throw new QmpError('GenericError', `Parameter 'count' expects a value in 1..${maxCount}`);
        try { vm.guest.startUdpSend(dst, port, rate, count); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
        return {};
      },
    },
    'x-guest-udp-stop': { args: {}, run: () => vm.guest.stopUdpSend() ?? {} },
  };
}

/** How long `quit` waits for a completed source to finish passing netpass frames. */
const NETPASS_QUIT_WAIT_MS = 1_500;

/** Runs the VM until quit; resolves with the exit status when the process should exit. */
export async function runVm(cfg: VmConfig): Promise<number> {
  const servers: QmpServer[] = [];
  const emit: EventSink = (event, ...data) => { for (const s of servers) s.emit(event, ...data); };
  const vm = new Vm(cfg, emit);
  let finish!: () => void;
  const done = new Promise<void>((resolve) => { finish = resolve; });
  let quitting = false;
  let exitCode = 0;
  const mig = new Migration(vm, emit, (code) => { exitCode = code; quit(null); });
  const quit = (reason: string | null): void => {
    if (quitting) return;
    quitting = true;
    void (mig.source?.finishNetpass(NETPASS_QUIT_WAIT_MS) ?? Promise.resolve()).then(() => close(reason));
  };
  const close = (reason: string | null): void => {
    if (reason) emit('SHUTDOWN', { guest: false, reason });
    mig.source?.cancel();
    mig.incoming?.close();
    vm.close();
    // Let the SHUTDOWN event and the last reply flush before the sockets go.
    setTimeout(() => { for (const s of servers) s.close(); finish(); }, 20);
  };
  // The NIC may change until the guest first runs, or on a destination until the stream arrives.
  const beforeGuestRuns = (): boolean => vm.runState === 'prelaunch' || (vm.runState === 'inmigrate' && (mig.incoming?.status ?? 'none') === 'none');
  const table: CommandTable = {
    ...vmCommands(vm, () => quit('host-qmp-quit')), ...mig.commands(), ...deviceCommands(vm, beforeGuestRuns),
    'query-qmp-schema': { args: {}, run: () => introspect(table) },
  };
  try {
    for (const path of cfg.qmp) servers.push(await QmpServer.listen(path, dispatcher(table)));
    if (cfg.incoming && cfg.incoming !== 'defer') await mig.listenIncoming(cfg.incoming);
  } catch (e) {
    vm.close();
    mig.incoming?.close();
    for (const s of servers) s.close();
    throw e;
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`${PROG}: terminating on signal ${sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15}\n`);
    quit('host-signal');
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);
  await done;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGHUP', onSignal);
  return exitCode;
}

export async function main(argv: string[]): Promise<void> {
  let cfg: VmConfig;
  try {
    cfg = parseCmdline(argv);
  } catch (e) {
    if (e instanceof CmdlineError) {
      process.stderr.write(`${PROG}: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  let code: number;
  try {
    code = await runVm(cfg);
  } catch (e) {
    process.stderr.write(`${PROG}: ${(e as Error).message}\n`);
    process.exit(1);
  }
  process.exit(code);
}
