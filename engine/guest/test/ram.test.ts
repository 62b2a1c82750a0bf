import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestRam, PAGE_SIZE, VcpuModel, ZERO_PAGE, parseRamSize } from '../ram.js';

test('parseRamSize reads QEMU -m sizes', () => {
  assert.is(parseRamSize('256M'), 256 * 2 ** 20);
  assert.is(parseRamSize('4G'), 4 * 2 ** 30);
  assert.is(parseRamSize('512'), 512 * 2 ** 20);
  assert.throws(() => parseRamSize('lots'), /invalid memory size 'lots'/);
  assert.throws(() => parseRamSize('1K'), /multiple of 4096/);
});

test('a 4 GiB guest is sparse: created without allocating its pages', () => {
  const before = process.memoryUsage().arrayBuffers;
  const ram = new GuestRam(4 * 2 ** 30);
  assert.is(ram.pageCount, 2 ** 20);
  assert.is(ram.nonZeroPages, 0);
  assert.ok(ram.isZero(12345));
  assert.is(ram.read(2 ** 20 - 1), ZERO_PAGE);
  assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 2 ** 20, 'bitmap only, not 4 GiB');
});

test('write, read, zero pages release memory, and out-of-range pages are refused', () => {
  const ram = new GuestRam(64 * PAGE_SIZE);
  const data = Buffer.alloc(PAGE_SIZE, 0xab);
  ram.write(3, data);
  assert.ok(!ram.isZero(3));
  assert.ok(ram.read(3).equals(data));
  assert.is(ram.nonZeroPages, 1);
  ram.write(3, Buffer.alloc(PAGE_SIZE));
  assert.ok(ram.isZero(3));
  assert.is(ram.nonZeroPages, 0);
  // A recycled page buffer must come back zeroed.
  ram.writeAt(5, 100, Buffer.from([1]));
  assert.is(ram.read(5)[0], 0);
  assert.is(ram.read(5)[100], 1);
  assert.throws(() => ram.read(64), /outside guest RAM/);
  assert.throws(() => ram.write(0, Buffer.alloc(10)), /a page is 4096 bytes/);
  assert.throws(() => ram.writeAt(0, 4090, Buffer.alloc(10)), /crosses the end/);
});

test('syncDirty returns the dirty pages in order and clears them', () => {
  const ram = new GuestRam(100 * PAGE_SIZE);
  for (const p of [99, 0, 31, 32, 64, 31]) ram.writeAt(p, 0, Buffer.from([7]));
  assert.is(ram.dirtyCount, 5);
  assert.equal([...ram.syncDirty()], [0, 31, 32, 64, 99]);
  assert.is(ram.dirtyCount, 0);
  assert.is(ram.syncDirty().length, 0);
  ram.markAllDirty();
  const all = ram.syncDirty();
  assert.is(all.length, 100);
  assert.is(all[99], 99);
});

test('clear() zeroes a page without dirtying it', () => {
  const ram = new GuestRam(8 * PAGE_SIZE);
  ram.write(2, Buffer.alloc(PAGE_SIZE, 1));
  ram.syncDirty();
  ram.clear(2);
  assert.ok(ram.isZero(2));
  assert.is(ram.dirtyCount, 0);
});

test('fill makes the asked fraction non-zero, reproducibly', () => {
  const a = new GuestRam(1000 * PAGE_SIZE);
  a.fill(0.5, 42);
  assert.is(a.nonZeroPages, 500);
  const b = new GuestRam(1000 * PAGE_SIZE);
  b.fill(0.5, 42);
  assert.is(a.digest(), b.digest());
  const c = new GuestRam(1000 * PAGE_SIZE);
  c.fill(0.5, 43);
  assert.is.not(a.digest(), c.digest());
  const full = new GuestRam(10 * PAGE_SIZE);
  full.fill(1, 1);
  assert.is(full.nonZeroPages, 10);
});

test('digest changes with one byte and is equal for equal content built differently', () => {
  const a = new GuestRam(16 * PAGE_SIZE);
  const b = new GuestRam(16 * PAGE_SIZE);
  a.write(1, Buffer.alloc(PAGE_SIZE, 9));
  b.writeAt(1, 0, Buffer.alloc(PAGE_SIZE, 9));
  b.write(7, Buffer.alloc(PAGE_SIZE, 1));
  b.write(7, Buffer.alloc(PAGE_SIZE));
  assert.is(a.digest(), b.digest());
  b.writeAt(1, 4095, Buffer.from([8]));
  assert.is.not(a.digest(), b.digest());
  assert.is.not(new GuestRam(PAGE_SIZE).digest(), new GuestRam(2 * PAGE_SIZE).digest());
});

test('VcpuModel dirties pages while running and nothing after stop', async () => {
  const ram = new GuestRam(1024 * PAGE_SIZE);
  const vcpu = new VcpuModel(ram, { dirtyRate: 20_000, seed: 3, workingSetPages: 256 });
  vcpu.start();
  assert.ok(vcpu.running);
  await new Promise((r) => setTimeout(r, 200));
  vcpu.stop();
  const dirty = ram.syncDirty();
  assert.ok(vcpu.written > 100, `written ${vcpu.written}`);
  assert.ok(dirty.length > 0 && dirty.length <= 256, `dirty ${dirty.length}`);
  assert.ok(dirty.every((p) => p < 256), 'stays in its working set');
  const written = vcpu.written;
  await new Promise((r) => setTimeout(r, 50));
  assert.is(vcpu.written, written);
  assert.is(ram.dirtyCount, 0);
});

test('VcpuModel.dirtyPages is deterministic per seed', () => {
  const a = new GuestRam(64 * PAGE_SIZE), b = new GuestRam(64 * PAGE_SIZE);
  new VcpuModel(a, { dirtyRate: 1, seed: 9 }).dirtyPages(500);
  new VcpuModel(b, { dirtyRate: 1, seed: 9 }).dirtyPages(500);
  assert.is(a.digest(), b.digest());
  assert.ok(a.nonZeroPages > 0);
});

test.run();
