// The guest for the real-QEMU backend, built from Debian packages and nothing else:
// Debian's cloud kernel (vmlinuz + the virtio-net modules), busybox-static and the guest's
// workload harness/vm/guest/guest-udp.c (UDP echo, sink, stream and dirtier, compiled here with
// Debian's gcc, -static) in a gzip'd cpio "newc" initramfs whose /init is
// harness/vm/guest/init.sh. This file is the only place that knows the guest layout; callers
// get paths and a kernel command line.
//
// Built on demand and cached by a hash of its inputs (package versions, init.sh, guest-udp.c,
// the compiler's and C library's versions, the module list and this recipe's code) under
// `<cacheDir>/<hash>/`. Nothing here needs root: `apt-get download`, `dpkg-deb -x` and gcc
// run as any user, and the cpio archive (including its /dev/console node) is written by this
// module rather than by cpio(1).
//
// API
//   ensureGuest({ cacheDir? }) -> Promise<Guest>
//   Guest = { kernel, initrd, kernelPackage, busyboxVersion, compiler, modules, cmdline(opts) }
//   GUEST_READY_MARKER       printed on ttyS0 once the NIC is configured and guest-udp runs
//   defaultGuestCacheDir()   <repo>/.cache/guest, or $XDG_CACHE_HOME/switchover/guest
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { run, ToolMissingError } from '../../net/exec.js';

export const GUEST_READY_MARKER = 'SWITCHOVER-GUEST-READY';

/** The NIC driver and the bus it sits on; their dependencies are found from modinfo. */
const MODULE_ROOTS = ['virtio_pci', 'virtio_net'] as const;
const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const initScriptPath = join(repoRoot, 'harness', 'vm', 'guest', 'init.sh');
const helperSourcePath = join(repoRoot, 'harness', 'vm', 'guest', 'guest-udp.c');

export interface GuestNetOptions {
  /** Guest address with prefix length, e.g. 192.168.100.2/24. */
  ip: string;
  mac: string;
  gw?: string;
  /** Shown in the guest's ready line, so a console log says which VM it is. */
  role?: string;
  /** Pages/s the guest's dirtier writes (the scenario's guest.dirtyRate); 0 or absent: none. */
  dirtyRate?: number;
}

export interface Guest {
  kernel: string;
  initrd: string;
  /** e.g. linux-image-6.1.0-56-cloud-amd64=6.1.192-2 */
  kernelPackage: string;
  busyboxVersion: string;
  /** The gcc and glibc that built guest-udp, e.g. "gcc (Debian 12.2.0-14+deb12u1) 12.2.0; glibc 2.36". */
  compiler: string;
  /** Module names in the order /init loads them. */
  modules: string[];
  cmdline(opts: GuestNetOptions): string;
}

interface Manifest { kernelPackage: string; busyboxVersion: string; compiler: string; modules: string[] }

export function defaultGuestCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return xdg ? join(xdg, 'switchover', 'guest') : join(repoRoot, '.cache', 'guest');
}

/** The guest kernel and initramfs, built now unless the cache already has this recipe's. */
export async function ensureGuest(opts: { cacheDir?: string } = {}): Promise<Guest> {
  const cacheDir = opts.cacheDir ?? defaultGuestCacheDir();
  const kernelPkg = await resolveKernelPackage();
  const busyboxVersion = await candidateVersion(BUSYBOX_PACKAGE);
  const initScript = readFileSync(initScriptPath);
  const helperSource = readFileSync(helperSourcePath);
  const compiler = await compilerVersion();
  const hash = createHash('sha256')
    .update(`${kernelPkg.name}=${kernelPkg.version}\n${BUSYBOX_PACKAGE}=${busyboxVersion}\n${MODULE_ROOTS.join(',')}\n${compiler}\n`)
    .update(initScript)
    .update(helperSource)
    .update(readFileSync(fileURLToPath(import.meta.url)))
    .digest('hex').slice(0, 16);
  const dir = join(cacheDir, hash);
  if (!existsSync(join(dir, 'manifest.json'))) {
    await build({ cacheDir, dir, kernelPkg, busyboxVersion, compiler, initScript });
  }
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  return {
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.gz'),
    ...manifest,
    cmdline: (o) => [
      // quiet: every console byte costs time on an emulated 8250 under TCG. mitigations=off:
      // page-table isolation switches page tables on every syscall and interrupt, and each
      // switch flushes TCG's soft TLB; with it the guest answered under half of 20,000 UDP
      // echoes/s through its sockets, without it all of them.
      'console=ttyS0', 'quiet', 'panic=-1', 'rdinit=/init', 'mitigations=off',
      `switchover.ip=${o.ip}`, `switchover.mac=${o.mac}`,
      ...(o.gw ? [`switchover.gw=${o.gw}`] : []),
      ...(o.role ? [`switchover.role=${o.role}`] : []),
      ...(o.dirtyRate ? [`switchover.dirty-rate=${o.dirtyRate}`] : []),
    ].join(' '),
  };
}

async function build(p: {
  cacheDir: string; dir: string; kernelPkg: { name: string; version: string };
  busyboxVersion: string; compiler: string; initScript: Buffer;
}): Promise<void> {
  await mkdir(p.cacheDir, { recursive: true });
  const work = await mkdtemp(join(p.cacheDir, '.build-'));
  try {
    const debs = join(work, 'debs');
    await mkdir(debs);
    const wanted = [`${p.kernelPkg.name}=${p.kernelPkg.version}`, `${BUSYBOX_PACKAGE}=${p.busyboxVersion}`];
    await tool(['apt-get', 'download', ...wanted], { cwd: debs, timeoutMs: 600_000 },
      `downloading ${wanted.join(' ')} from Debian's mirrors failed (check network access to the Debian mirror, or run \`apt-get update\`)`);
    const root = join(work, 'root');
    for (const deb of readdirSync(debs)) {
      await tool(['dpkg-deb', '-x', join(debs, deb), root], { timeoutMs: 300_000 }, `extracting ${deb} failed`);
    }
    const kernel = findFile(join(root, 'boot'), (n) => n.startsWith('vmlinuz-'));
    const busybox = join(root, 'bin', 'busybox');
    if (!kernel || !existsSync(busybox)) {
      throw new Error(`guest recipe: ${kernel ? '/bin/busybox' : '/boot/vmlinuz-*'} not found in the downloaded packages ${wanted.join(' ')}; the package layout changed, update harness/vm/guest/recipe.ts`);
    }
    const modules = await loadOrderedModules(root);
    const helper = join(work, 'guest-udp');
    await tool(['gcc', '-static', '-O2', '-Wall', '-o', helper, helperSourcePath], { timeoutMs: 120_000 },
      `compiling ${helperSourcePath} failed (a static binary needs libc6-dev: run \`npm run setup\`)`);
    const entries: CpioEntry[] = [
      ...['bin', 'dev', 'etc', 'lib', 'lib/modules', 'proc', 'sys', 'tmp'].map((name) => dirEntry(name)),
      // The kernel opens /dev/console before /init runs; devtmpfs is mounted only later.
      { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
      { name: 'init', mode: 0o100755, data: p.initScript },
      { name: 'bin/busybox', mode: 0o100755, data: readFileSync(busybox) },
      { name: 'bin/guest-udp', mode: 0o100755, data: readFileSync(helper) },
      { name: 'etc/modules', mode: 0o100644, data: Buffer.from(modules.map((m) => `/lib/modules/${m.name}.ko\n`).join('')) },
      ...modules.map((m) => ({ name: `lib/modules/${m.name}.ko`, mode: 0o100644, data: m.data })),
    ];
    const out = join(work, 'out');
    await mkdir(out);
    await writeFile(join(out, 'vmlinuz'), readFileSync(kernel));
    await writeFile(join(out, 'initrd.gz'), gzipSync(newc(entries), { level: 9 }));
    const manifest: Manifest = {
      kernelPackage: `${p.kernelPkg.name}=${p.kernelPkg.version}`, busyboxVersion: p.busyboxVersion,
      compiler: p.compiler, modules: modules.map((m) => m.name),
    };
    await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    try {
      await rename(out, p.dir);
    } catch (e) {
      // Another process built the same recipe first: its copy is as good as ours.
      if (!existsSync(join(p.dir, 'manifest.json'))) throw e;
    }
    // One guest per cache: builds of other recipe versions are dropped, not accumulated.
    for (const name of readdirSync(p.cacheDir)) {
      if (/^[0-9a-f]{16}$/.test(name) && name !== basename(p.dir)) await rm(join(p.cacheDir, name), { recursive: true, force: true });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** linux-image-cloud-amd64's Depends, e.g. linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2). */
async function resolveKernelPackage(): Promise<{ name: string; version: string }> {
  const show = await aptShow(KERNEL_METAPACKAGE);
  const m = /^Depends:.*?\b(linux-image-[\w.+-]+)\s*\(=\s*([^)\s]+)\)/m.exec(show);
  if (!m?.[1] || !m[2]) {
    throw new Error(`guest recipe: cannot find the versioned kernel package in the Depends of ${KERNEL_METAPACKAGE}; update harness/vm/guest/recipe.ts`);
  }
  return { name: m[1], version: m[2] };
}

/** gcc's and glibc's versions: a new compiler or C library builds a new guest-udp. */
async function compilerVersion(): Promise<string> {
  const gcc = (await tool(['gcc', '--version'], { timeoutMs: 30_000 }, 'gcc --version failed')).split('\n')[0]!.trim();
  const libc = (await tool(['getconf', 'GNU_LIBC_VERSION'], { timeoutMs: 30_000 }, 'getconf GNU_LIBC_VERSION failed')).trim();
  return `${gcc}; ${libc}`;
}

async function candidateVersion(pkg: string): Promise<string> {
  const m = /^Version:\s*(\S+)/m.exec(await aptShow(pkg));
  if (!m?.[1]) throw new Error(`guest recipe: apt-cache shows no version of ${pkg}; run \`apt-get update\``);
  return m[1];
}

async function aptShow(pkg: string): Promise<string> {
  const out = await tool(['apt-cache', 'show', '--no-all-versions', pkg], { timeoutMs: 60_000 },
    `apt-cache knows no package ${pkg}: run \`apt-get update\` (the guest is built from Debian packages)`);
  if (!out.trim()) throw new Error(`guest recipe: apt-cache knows no package ${pkg}: run \`apt-get update\``);
  return out;
}

interface Module { name: string; data: Buffer }

/**
 * MODULE_ROOTS and their dependencies, each after the modules it depends on (virtio_ring
 * before virtio). The .deb has no modules.dep (depmod runs at install), so dependencies
 * come from each module's own `.modinfo` `depends=` string, as modinfo(8) reads it.
 */
async function loadOrderedModules(root: string): Promise<Module[]> {
  const moduleDir = ['lib/modules', 'usr/lib/modules'].map((d) => join(root, d)).find((d) => existsSync(d));
  if (!moduleDir) throw new Error('guest recipe: no lib/modules in the kernel package; update harness/vm/guest/recipe.ts');
  const files = new Map<string, string>();
  walk(moduleDir, (path) => {
    const m = /^(.+)\.ko(\.xz)?$/.exec(basename(path));
    if (m?.[1]) files.set(m[1].replace(/-/g, '_'), path);
  });
  const ordered: Module[] = [];
  const visiting = new Set<string>();
  const visit = async (name: string): Promise<void> => {
    if (ordered.some((m) => m.name === name) || visiting.has(name)) return;
    visiting.add(name);
    const path = files.get(name);
    if (!path) throw new Error(`guest recipe: kernel module ${name} not found in the kernel package (is it built in now? update MODULE_ROOTS in harness/vm/guest/recipe.ts)`);
    // busybox insmod loads plain ELF only; Debian's newer kernels ship .ko.xz, decompressed
    // here in place (the extracted tree is scratch).
    if (path.endsWith('.xz')) await tool(['xz', '--decompress', path], { timeoutMs: 60_000 }, `decompressing ${path} failed`);
    const data = readFileSync(path.replace(/\.xz$/, ''));
    for (const dep of modinfoDepends(data)) await visit(dep);
    ordered.push({ name, data });
  };
  for (const name of MODULE_ROOTS) await visit(name);
  return ordered;
}

function modinfoDepends(ko: Buffer): string[] {
  const key = Buffer.from('\0depends=');
  const at = ko.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const value = ko.subarray(start, ko.indexOf(0, start)).toString('latin1');
  return value ? value.split(',').map((d) => d.replace(/-/g, '_')) : [];
}

function walk(dir: string, onFile: (path: string) => void): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, onFile);
    else onFile(p);
  }
}

function findFile(dir: string, match: (name: string) => boolean): string | undefined {
  if (!existsSync(dir)) return undefined;
  const name = readdirSync(dir).find(match);
  return name ? join(dir, name) : undefined;
}

interface CpioEntry { name: string; mode: number; data?: Buffer; rdev?: [number, number] }

function dirEntry(name: string): CpioEntry {
  return { name, mode: 0o040755 };
}

/**
 * A cpio archive in the "newc" format the kernel unpacks (Documentation/driver-api/
 * early-userspace/buffer-format.rst): owner root, mtime 0, so equal inputs give equal bytes.
 */
function newc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const add = (e: CpioEntry, ino: number) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const fields = [ino, e.mode, 0, 0, e.mode & 0o040000 ? 2 : 1, 0, data.length, 0, 0,
      e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''));
    parts.push(header, name, pad4(header.length + name.length), data, pad4(data.length));
  };
  entries.forEach((e, i) => add(e, i + 1));
  add({ name: 'TRAILER!!!', mode: 0 }, 0);
  return Buffer.concat(parts);
}

/**
 * Run a recipe tool; a failure says what failed and what to do, with the command's exit code
 * and stderr. A tool that is not installed is a ToolMissingError naming its package.
 */
async function tool(argv: string[], o: { cwd?: string; timeoutMs: number }, whatFailed: string): Promise<string> {
  try {
    return (await run(argv, o)).stdout;
  } catch (e) {
    if (e instanceof ToolMissingError) throw e;
    throw new Error(`guest recipe: ${whatFailed}: ${(e as Error).message}`, { cause: e });
  }
}
