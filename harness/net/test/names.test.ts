import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync, statSync } from 'node:fs';
import { InvalidNameError, createRunDir, newRunId, runNames, validateName } from '../names.js';

test('run names are unique per run and fit IFNAMSIZ', () => {
  const a = runNames(newRunId()), b = runNames(newRunId());
  assert.is.not(a.hostNs, b.hostNs);
  for (const [k, v] of Object.entries(a)) {
    if (k === 'runId') continue;
    assert.ok(v.length <= 15, `${k} ${v} longer than 15`);
    assert.ok(v.includes(a.runId));
  }
  assert.throws(() => runNames('abc; rm'), /invalid run id/);
});

test('validateName rejects injection attempts and over-long names', () => {
  for (const bad of ['tap0; rm -rf /', '$(id)', '`id`', 'a b', 'tap0\nx', '', 'x'.repeat(16), '..', '-n', '--help', 'tap0|cat', 'tap/0']) {
    assert.throws(() => validateName('iface', bad), (e: Error) => e instanceof InvalidNameError && e.message.includes('invalid iface name'));
  }
  assert.is(validateName('iface', 'so1a2b3ct0'), 'so1a2b3ct0');
  assert.is(validateName('netns', 'so-1a2b3c-h'), 'so-1a2b3c-h');
});

test('the run dir is new and private (0700)', () => {
  const id = newRunId();
  const dir = createRunDir(id);
  try {
    assert.is(statSync(dir).mode & 0o777, 0o700);
    assert.throws(() => createRunDir(id), /EEXIST/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
