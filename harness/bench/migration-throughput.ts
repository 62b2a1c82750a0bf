// Bench section "migration-throughput": RAM migration speed of the engine against real QEMU,
// side by side, guests of the same size and fill, unlimited bandwidth, over a UNIX socket on
// this host, no NIC (RAM is what is measured).
//
// - Engine: a 1 GiB guest booted with `-guest fill=0.5` (half its pages random, engine/guest/ram.ts
//   GuestRam.fill), vCPU idle (dirty-rate 0), `max-bandwidth` 0 (unlimited).
// - QEMU: the project's guest (harness/vm/guest) booted under TCG with 1 GiB, 512 MiB of it
//   filled with random bytes by QEMU's generic loader (`-device loader,file=,addr=,force-raw=on`,
//   hw/core/generic-loader.c), since the busybox guest has no role that fills memory.
//   `max-bandwidth` 2^40 B/s (QEMU 7.2's default is 32 MiB/s).
//
// Two figures per side: `ram.mbps` / 8 (MB/s) as query-migrate reports it after completion,
// and transferred / total-time. Note the definitions differ: QEMU computes mbps at completion
// over the whole transfer (migration.c migration_calculate_complete()), the engine reports
// its last 100 ms bandwidth window; transferred / total-time is defined the same on both.
import { setTimeout as sleep } from 'node:timers/promises';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationInfo } from '../../lib/qmp-protocol.js';
import { ensureGuest, GUEST_READY_MARKER } from '../vm/guest/recipe.js';
import type { VmProcess } from '../vm/process.js';
import {
  engineVmArgv, hasTool, mbPerS, migrateLocally, round, startProcessVm,
} from './measure.js';
import { type BenchContext, type BenchRow, type BenchSection } from './section.js';

const SECTION = 'migration-throughput';
const MEM_MB = 1024;
const FILL = 0.5;
/** Where the QEMU fill starts: above the kernel (1-16 MiB), below the initrd (top of RAM). */
const QEMU_FILL_ADDR = 0x1000_0000;
const QEMU_BANDWIDTH = 2 ** 40;
const QEMU_BOOT_TIMEOUT_MS = 90_000;

interface Side { mbps: number; totalMs: number; transferred: number; normal: number; version?: string }

function sideOf(info: MigrationInfo, version?: string): Side {
  return {
    mbps: info.ram?.mbps ?? NaN, totalMs: info['total-time'] ?? NaN,
    transferred: info.ram?.transferred ?? NaN, normal: info.ram?.normal ?? NaN, ...(version ? { version } : {}),
  };
}

async function pair(start: (name: string, incoming?: string) => Promise<VmProcess>): Promise<[VmProcess, VmProcess]> {
  const src = await start('src');
  try {
    return [src, await start('dst', 'defer')];
  } catch (e) {
    await src.shutdown();
    throw e;
  }
}

async function engineSide(ctx: BenchContext, dir: string): Promise<Side> {
  const start = (name: string, incoming?: string): Promise<VmProcess> => {
    const { argv, qmpPath } = engineVmArgv(ctx.root, { name, dir, memMB: MEM_MB, fill: FILL, ...(incoming ? { incoming } : {}) });
    return startProcessVm(argv, { name: `engine-${name}`, dir, qmpPath, timeoutMs: 60_000 });
  };
  const [src, dst] = await pair(start);
  try {
    return sideOf(await migrateLocally(src, dst, join(dir, 'engine-mig.sock'), { parameters: { 'max-bandwidth': 0 } }));
  } finally {
    await src.shutdown();
    await dst.shutdown();
  }
}

/** MEM_MB * FILL MiB of random bytes, written in 1 MiB chunks. */
function writeFillFile(path: string): void {
  const chunk = Buffer.alloc(2 ** 20);
  const fd = openSync(path, 'w', 0o600);
  try {
    for (let i = 0; i < MEM_MB * FILL; i++) writeSync(fd, randomFillSync(chunk));
  } finally {
    closeSync(fd);
  }
}

async function waitConsole(path: string, vm: VmProcess): Promise<void> {
  const deadline = Date.now() + QEMU_BOOT_TIMEOUT_MS;
  let exited = false;
  void vm.exited.then(() => { exited = true; });
  while (Date.now() < deadline && !exited) {
    try {
      if (readFileSync(path, 'utf8').includes(GUEST_READY_MARKER)) return;
    } catch {
      // console file not created yet
    }
    await sleep(100);
  }
  throw new Error(`QEMU guest did not print ${GUEST_READY_MARKER} within ${QEMU_BOOT_TIMEOUT_MS / 1000} s${exited ? ' (QEMU exited)' : ''}; see ${vm.logPath}`);
}

async function qemuSide(dir: string): Promise<Side> {
  const guest = await ensureGuest();
  const fill = join(dir, 'fill.bin');
  writeFillFile(fill);
  const start = (name: string, incoming?: string): Promise<VmProcess> => {
    const qmpPath = join(dir, `qemu-${name}.qmp`);
    const argv = [
      'qemu-system-x86_64', '-name', name, '-nodefaults', '-nographic', '-no-user-config',
      '-machine', 'pc', '-accel', 'tcg', '-m', `${MEM_MB}M`, '-smp', '1',
      '-kernel', guest.kernel, '-initrd', guest.initrd,
      '-append', guest.cmdline({ ip: '192.168.100.2/24', mac: '52:54:00:12:34:56', role: name }),
      '-serial', `file:${join(dir, `qemu-${name}.console`)}`,
      '-qmp', `unix:${qmpPath},server=on,wait=off`,
      '-device', `loader,file=${fill},addr=0x${QEMU_FILL_ADDR.toString(16)},force-raw=on`,
      ...(incoming ? ['-incoming', incoming] : []),
    ];
    return startProcessVm(argv, { name: `qemu-${name}`, dir, qmpPath });
  };
  const [src, dst] = await pair(start);
  try {
    await waitConsole(join(dir, 'qemu-src.console'), src);
    const v = src.qmp.greeting.QMP.version.qemu;
    const info = await migrateLocally(src, dst, join(dir, 'qemu-mig.sock'), { parameters: { 'max-bandwidth': QEMU_BANDWIDTH } });
    return sideOf(info, `${v.major}.${v.minor}.${v.micro}`);
  } finally {
    await src.shutdown();
    await dst.shutdown();
    rmSync(fill, { force: true }); // 512 MiB, on a tmpfs /tmp held in RAM until the bench ends
  }
}

const MiB = (b: number): number => round(b / 2 ** 20, 0);

export const migrationThroughputSection: BenchSection = {
  name: SECTION,
  what: `engine RAM migration MB/s (${MEM_MB} MiB guest, ${FILL * 100}% non-zero, unlimited bandwidth) vs QEMU TCG`,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const dir = mkdtempSync(join(ctx.tmpDir, 'mig-'));
    const engine = await engineSide(ctx, dir);
    let qemu: Side | undefined;
    let why = '';
    if (!hasTool('qemu-system-x86_64')) why = 'qemu-system-x86_64 not found (apt-get install qemu-system-x86)';
    else {
      try {
        qemu = await qemuSide(dir);
      } catch (e) {
        why = `QEMU side failed: ${(e as Error).message.split('\n')[0]}`;
      }
    }
    const peerName = qemu ? `QEMU ${qemu.version} TCG` : 'QEMU TCG';
    const size = `${MEM_MB} MiB guest, ${FILL * 100}% non-zero`;
    const row = (measure: string, unit: string, e: number, q: number | undefined, better: 'higher' | 'lower', note: string): BenchRow => {
      const value = round(e, 1);
      const peerValue = q === undefined || !Number.isFinite(q) ? null : round(q, 1);
      return {
        section: SECTION, measure, value, unit, peer: { name: peerName, value: peerValue },
        ...(peerValue ? { ratio: round(better === 'higher' ? value / peerValue : peerValue / value, 2) } : {}),
        note: qemu ? note : `${note}; peer n/a: ${why}`,
      };
    };
    return [
      row('ram.mbps / 8', 'MB/s', engine.mbps / 8, qemu && qemu.mbps / 8, 'higher',
        `${size}; engine: last 100 ms window, QEMU: whole transfer`),
      row('transferred / total-time', 'MB/s', mbPerS(engine.transferred, engine.totalMs),
        qemu && mbPerS(qemu.transferred, qemu.totalMs), 'higher', size),
      row('total-time', 'ms', engine.totalMs, qemu?.totalMs, 'lower',
        `transferred: engine ${MiB(engine.transferred)} MiB (${engine.normal} normal pages)`
        + (qemu ? `, QEMU ${MiB(qemu.transferred)} MiB (${qemu.normal} normal pages)` : '')),
    ];
  },
};
