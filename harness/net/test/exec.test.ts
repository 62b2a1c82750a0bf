import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, PRIVILEGED_COMMANDS, ToolMissingError, privileged, requireTools, run, isRoot } from '../exec.js';

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

test('privileged() allows only the listed commands', () => {
  assert.equal(PRIVILEGED_COMMANDS, ['ip', 'bridge', 'tc', 'nft', 'tcpdump', 'kill']);
  assert.throws(() => privileged(['rm', '-rf', '/tmp/x']), /refusing to run rm/);
  assert.throws(() => privileged(['sh', '-c', 'id']), /refusing/);
  assert.throws(() => privileged([]), /refusing/);
  const argv = privileged(['ip', 'link']);
  assert.equal(argv, isRoot() ? ['ip', 'link'] : ['sudo', '-n', 'ip', 'link']);
});

test.run();
