import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, PRIVILEGED_COMMANDS, ToolMissingError, commandFailure, neverRan, privileged, requireTools, run, isRoot, start } from '../exec.js';

test('a missing tool names its Debian package (PATH without tcpdump)', async () => {
  const bin = mkdtempSync(join(tmpdir(), 'so-path-'));
  try {
    symlinkSync(process.execPath, join(bin, 'node')); // a PATH with something, but no tcpdump
    const env = { ...process.env, PATH: bin };
    assert.throws(() => requireTools(['node', 'tcpdump'], env), (e: Error) =>
      e instanceof ToolMissingError && e.message === 'tcpdump not found: run `npm run setup` or `apt-get install tcpdump`');
    const err = await run(['tcpdump', '--version'], { env }).then(() => undefined, (e: Error) => e);
    assert.instance(err, ToolMissingError);
    assert.is((err as ToolMissingError).tool, 'tcpdump');
    assert.throws(() => requireTools(['qemu-system-x86_64'], { PATH: bin }), /apt-get install qemu-system-x86/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test('a failing command reports the command, exit code and stderr', async () => {
  const err = await run([process.execPath, '-e', 'process.stderr.write("boom here"); process.exit(3)']).then(() => undefined, (e: Error) => e);
  assert.instance(err, CommandError);
  const ce = err as CommandError;
  assert.is(ce.exitCode, 3);
  assert.match(ce.message, /exited with code 3: boom here/);
  assert.match(ce.message, /-e/);
  const ok = await run([process.execPath, '-e', 'process.exit(4)'], { allowFail: true });
  assert.is(ok.exitCode, 4);
});

test('arguments reach the program verbatim, never through a shell', async () => {
  const hostile = '$(id); rm -rf / `id` | cat > x';
  const r = await run([process.execPath, '-e', 'process.stdout.write(process.argv[1])', hostile]);
  assert.is(r.stdout, hostile);
});

test('start(): output as it comes and in the result, the exit never thrown; a program that cannot run says why', async () => {
  const argv = [process.execPath, '-e', 'process.stderr.write("ready\\n"); setInterval(() => {}, 1000)'];
  const child = start(argv);
  await new Promise<void>((resolve) => child.stderr!.setEncoding('utf8').on('data', (d: string) => { if (d.includes('ready')) resolve(); }));
  child.kill('SIGINT');
  const r = await child;
  assert.is(r.signal, 'SIGINT');
  assert.is(r.stderr, 'ready\n');
  assert.is(neverRan(r), undefined);
  const failed = commandFailure(argv, r);
  assert.instance(failed, CommandError);
  assert.match(failed!.message, /was killed by SIGINT: ready/);
  const missing = await start([join(tmpdir(), 'so-no-such-program')]);
  assert.match(neverRan(missing) ?? '', /ENOENT/);
  assert.throws(() => start(['so-no-such-tool']), (e: Error) => e instanceof ToolMissingError);
});

test('privileged() allows only the listed commands', () => {
  assert.equal(PRIVILEGED_COMMANDS, ['ip', 'bridge', 'tc', 'nft', 'tcpdump', 'kill']);
  assert.throws(() => privileged(['rm', '-rf', '/tmp/x']), /refusing to run rm/);
  assert.throws(() => privileged(['sh', '-c', 'id']), /refusing/);
  assert.throws(() => privileged([]), /refusing/);
  const argv = privileged(['ip', 'link']);
  assert.equal(argv, isRoot() ? ['ip', 'link'] : ['sudo', '-n', 'ip', 'link']);
});

test.run();
