// The architecture's boundary, checked: every import of every source file against one table of
// what each folder may import (as Playwright's DEPS.list files do). The one boundary between
// harness and engine is QMP plus a QEMU-style command line (DESIGN.md), so neither imports the
// other; what both ends of a wire need lives in lib/, which imports neither.
//
// Reads the TypeScript sources, not dist/: the imports are what a reviewer sees.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Folder -> the folders its files may import from (relative imports; npm packages and node:
 * builtins are not limited here). The longest matching folder wins, so a `test/` row widens
 * its parent's row for tests only. A folder not listed is an error: add its row.
 */
export const DEPS: Readonly<Record<string, readonly string[]>> = {
  'lib/': ['lib/'],
  'engine/': ['engine/', 'lib/'],
  // The networked engine tests drive an engine VM from outside, as QEMU's functional tests do.
  'engine/test/': ['engine/', 'lib/', 'harness/net/', 'fixtures/'],
  'engine/guest/test/': ['engine/', 'lib/', 'fixtures/'],
  'engine/migration/test/': ['engine/', 'lib/', 'fixtures/'],
  'engine/qmp/test/': ['engine/', 'lib/', 'fixtures/'],
  'harness/': ['harness/', 'lib/'],
  'harness/bench/': ['harness/', 'lib/', 'fixtures/'],
  'harness/*/test/': ['harness/', 'lib/', 'fixtures/', 'scenarios/'],
  'lib/test/': ['lib/', 'fixtures/'],
  'fixtures/': ['fixtures/', 'lib/', 'harness/capture/'],
  'scenarios/': ['harness/scenario/'],
  'test/': [],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** The DEPS row for a file: the longest folder pattern (`*` = one folder) that contains it. */
function rowFor(file: string): string | undefined {
  let best: string | undefined;
  for (const folder of Object.keys(DEPS)) {
    const re = new RegExp(`^${folder.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]+')}`);
    if (re.test(file) && (!best || folder.length > best.length)) best = folder;
  }
  return best;
}

/** Relative specifiers of static, type-only and dynamic imports and re-exports. */
function importsOf(text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map((f) => f.fileName).filter((s) => s.startsWith('.'));
}

const AREAS = ['lib', 'engine', 'harness', 'fixtures', 'scenarios', 'test'];
const files = AREAS.flatMap(sources).map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }));

/** Every import that its file's DEPS row does not allow, as one line each. */
function violations(list: readonly { file: string; text: string }[]): string[] {
  const bad: string[] = [];
  for (const { file, text } of list) {
    const row = rowFor(file);
    if (!row) { bad.push(`${file}: no DEPS row for its folder`); continue; }
    for (const spec of importsOf(text)) {
      const target = normalize(join(dirname(file), spec));
      if (!DEPS[row]!.some((allowed) => target.startsWith(allowed))) {
        bad.push(`${file} imports ${relative('.', target)} (${row} may import ${DEPS[row]!.join(', ') || 'nothing'})`);
      }
    }
  }
  return bad;
}

test('the boundary holds: engine, harness and lib import only what DEPS allows', () => {
  assert.ok(files.length > 100, `found ${files.length} sources: the walk is reading the tree`);
  const bad = violations(files);
  assert.equal(bad, [], `imports across the boundary:\n  ${bad.join('\n  ')}`);
});

test('the check can fail: each forbidden edge, static, type-only, dynamic or re-export, is caught', () => {
  const bad = violations([
    { file: 'harness/run/x.ts', text: "import type { Nic } from '../../engine/guest/nic.js';" },
    { file: 'engine/migration/x.ts', text: "const m = await import('../../harness/net/topology.js');" },
    { file: 'lib/x.ts', text: "export { run } from '../harness/net/exec.js';" },
    { file: 'engine/guest/x.ts', text: "import '../../harness/net/names.js';" },
    { file: 'newfolder/x.ts', text: '' },
    { file: 'engine/test/ok.test.ts', text: "import { buildTopology } from '../../harness/net/topology.js';" },
    { file: 'harness/cli/test/ok.test.ts', text: "import { x } from '../../../fixtures/pcap-synth.js';" },
  ]);
  assert.equal(bad.map((l) => l.split(' ')[0]), [
    'harness/run/x.ts', 'engine/migration/x.ts', 'lib/x.ts', 'engine/guest/x.ts', 'newfolder/x.ts:',
  ]);
  assert.match(bad[0]!, /imports engine\/guest\/nic\.js \(harness\/ may import harness\/, lib\/\)/);
});

test.run();
