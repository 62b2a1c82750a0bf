// `switchover vm ...`: the engine VM process. Parses the QEMU-shaped command line, opens the
// TAPs, starts the QMP monitors and runs until `quit` or a signal. Nothing goes to stdout;
// errors and warnings go to stderr prefixed `switchover-vm:` as QEMU prefixes its own name.
import { CmdlineError, parseCmdline, type VmConfig } from './cmdline.js';
import { ipToInt, UDP_SENDER_LIMITS } from './guest/net.js';
import { Migration } from './migration/migration.js';
import { dispatcher, type CommandDef } from './qmp/commands.js';
import { QmpError, QmpServer } from './qmp/server.js';
import { Vm } from './vm.js';

const PROG = 'switchover-vm';

function vmCommands(vm: Vm, quit: () => void): Map<string, CommandDef> {
  const none = {};
  const t = new Map<string, CommandDef>();
  t.set('query-status', { args: none, run: () => vm.status() });
  t.set('query-name', { args: none, run: () => (vm.config.name !== undefined ? { name: vm.config.name } : {}) });
  t.set('stop', { args: none, run: () => { vm.qmpStop(); return {}; } });
  t.set('cont', {
    args: none,
    run: () => {
      try { vm.qmpCont(); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
      return {};
    },
  });
  t.set('quit', { args: none, run: () => { setImmediate(quit); return {}; } });
  t.set('x-query-guest-net', { args: none, run: () => vm.guest.info() });
  t.set('x-query-ram-digest', {
    args: none,
    run: () => ({ pages: vm.ram.pageCount, 'nonzero-pages': vm.ram.nonZeroPages, digest: vm.ram.digest() }),
  });
  t.set('x-guest-udp-send', {
    args: { dst: { type: 'str' }, port: { type: 'int' }, rate: { type: 'number' }, count: { type: 'int' } },
    run: (a) => {
      const dst = a.dst as string, port = a.port as number, rate = a.rate as number, count = a.count as number;
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(dst) || ipToInt(dst) === 0) throw new QmpError('GenericError', `Parameter 'dst' expects an IPv4 address`);
      if (port < 1 || port > 65535) throw new QmpError('GenericError', `Parameter 'port' expects a value in 1..65535`);
      const { maxRate, maxCount } = UDP_SENDER_LIMITS;
      if (!(rate > 0 && rate <= maxRate)) throw new QmpError('GenericError', `Parameter 'rate' expects packets/s in (0, ${maxRate}]`);
      if (count < 1 || count > maxCount) throw new QmpError('GenericError', `Parameter 'count' expects a value in 1..${maxCount}`);
      try { vm.guest.startUdpSend(dst, port, rate, count); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
      return {};
    },
  });
  t.set('x-guest-udp-stop', { args: none, run: () => vm.guest.stopUdpSend() ?? {} });
  return t;
}

/** How long `quit` waits for a completed source to finish passing netpass frames. */
const NETPASS_QUIT_WAIT_MS = 1_500;

/** Runs the VM until quit; resolves with the exit status when the process should exit. */
export async function runVm(cfg: VmConfig): Promise<number> {
  const servers: QmpServer[] = [];
  const emit = (event: string, data?: Record<string, unknown>): void => { for (const s of servers) s.emit(event, data); };
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
  const table = new Map([...vmCommands(vm, () => quit('host-qmp-quit')), ...mig.commands()]);
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
