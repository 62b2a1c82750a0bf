// The CLI explains itself (issue 16): `switchover --help` lists every subcommand, each
// subcommand has --help, `run --help` gives every option of the table it parses with one line,
// and the parser refuses what is in no table, even next to --help (the CI templates test
// relies on that).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandHelp, parseCommand, UsageError, type CommandSpec } from '../args.js';
import { RUN } from '../main.js';
import { runCli, type CliResult } from './run-cli.js';

async function cli(argv: string[]): Promise<CliResult> {
  const r = await runCli(argv, { timeoutMs: 30_000 });
  assert.not.ok(r.timedOut, `switchover ${argv.join(' ')} did not finish`);
  return r;
}

test('`switchover --help` lists every subcommand, and each has a --help of its own', async () => {
  const top = await cli(['--help']);
  assert.is(top.code, 0, top.stderr);
  const listed = [...top.stdout.matchAll(/^ {2}switchover (\S+)/gm)].map((m) => m[1]!);
  for (const name of ['run', 'list', 'show', 'schema', 'analyze', 'baseline', 'cleanup', 'vm']) {
    assert.ok(listed.includes(name), `${name} is not listed:\n${top.stdout}`);
  }
  // `vm` is the engine's own command line (engine/cmdline.ts), started by bin/switchover.js.
  for (const name of listed.filter((n) => n !== 'vm')) {
    const r = await cli([name, '--help']);
    assert.is(r.code, 0, `${name} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: switchover ${name}`), `${name} --help`);
  }
});

test('`run --help` describes every option of the table it parses with, one line each', async () => {
  const r = await cli(['run', '--help']);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  for (const [name, o] of Object.entries(RUN.options)) {
    const line = lines.find((l) => new RegExp(`^\\s+(-\\w, )?--${name}\\b`).test(l));
    assert.ok(line, `--${name} has no line in run --help`);
    assert.ok(line.includes(o.help), `--${name}: the line does not carry its help: ${line}`);
  }
  for (const option of ['--trace', '--trace-on failure|always', '--shard K/N', '--backend engine|qemu']) {
    assert.ok(r.stdout.includes(option), `${option} in run --help`);
  }
});

test('an option in no table is refused with the closest one, even next to --help', async () => {
  for (const argv of [['run', '--junitt', 'x.xml'], ['run', '--junitt', 'x.xml', '--help'], ['show', 'baseline-bridge-ping', '--verbose']]) {
    const r = await cli(argv);
    assert.is(r.code, 2, `${argv.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, /has no option --(junitt|verbose)/, argv.join(' '));
    assert.is(r.stdout, '', `${argv.join(' ')}: printed help although refused`);
  }
  const typo = await cli(['run', '--junitt', 'x.xml']);
  assert.match(typo.stderr, /did you mean --junit\?/);
  assert.match(typo.stderr, /`switchover run --help` describes every option/);
});

test('a value outside an option\'s choices is refused, even next to --help; --from belongs to baseline save only', async () => {
  const bad = await cli(['run', '--trace-on', 'sometimes', '--help']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--trace-on "sometimes": expected failure or always/);
  const typo = await cli(['run', '--backend', 'qemuu']);
  assert.match(typo.stderr, /--backend "qemuu": expected engine or qemu \(did you mean "qemu"\?\)/);
  const from = await cli(['run', '--from', 'results.json']);
  assert.is(from.code, 2);
  assert.match(from.stderr, /`switchover run` has no option --from/);
});

test('no command prints the command list on stderr and exits 2; an unknown one gets a did-you-mean', async () => {
  const none = await cli([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /^usage: switchover COMMAND/);
  const typo = await cli(['lsit']);
  assert.is(typo.code, 2);
  assert.match(typo.stderr, /unknown command "lsit"; did you mean "list"\?/);
});

test('parseCommand: one table for parsing and help; typed values, defaults, repeatable options', () => {
  const spec: CommandSpec = {
    name: 'demo', args: '[X...]', summary: 'A demo.',
    options: {
      out: { type: 'string', arg: 'FILE', help: 'where to write' },
      mode: { type: 'string', default: 'fast', choices: ['fast', 'slow'], help: 'how' },
      tag: { type: 'string', multiple: true, default: [], arg: 'T', help: 'a tag' },
      help: { type: 'boolean', short: 'h', help: 'print this help' },
    },
  };
  const parsed = parseCommand(spec, ['a', '--tag', 'x', '--tag', 'y', '--out=o.txt', 'b']);
  assert.equal(parsed?.positionals, ['a', 'b']);
  assert.equal({ ...parsed?.values }, { out: 'o.txt', mode: 'fast', tag: ['x', 'y'] });
  const help = commandHelp(spec);
  assert.match(help, /^usage: switchover demo \[X\.\.\.\] \[options\]\n\nA demo\.\n/);
  assert.match(help, /\n {6}--out FILE {8}where to write\n/);
  assert.match(help, /\n {6}--mode fast\|slow {2}how \(default fast\)\n/);
  assert.match(help, /--tag T .*a tag; repeatable\n/);
  assert.match(help, /\n {2}-h, --help {12}print this help\n/);
  assert.throws(() => parseCommand(spec, ['--out']), (e: Error) => e instanceof UsageError && /--out/.test(e.message));
  assert.throws(() => parseCommand(spec, ['--mode', 'medium']), (e: Error) => e instanceof UsageError && /expected fast or slow/.test(e.message));
  assert.throws(() => parseCommand(spec, ['--x'.padEnd(5000, 'x')]), (e: Error) => e instanceof UsageError && e.message.length < 300);
});

test.run();
