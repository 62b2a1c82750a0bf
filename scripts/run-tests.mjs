#!/usr/bin/env node
// Test runner: each uvu test file runs in its own Node process (a crashed or hung file
// cannot take the others down), with a per-file time limit. Prints each file's uvu
// report and ends with the line CI reads: `N passed, N failed[, N skipped]`.
//
// Arguments select files by path (TypeScript source or compiled); none means all.
// In CI (CI=true) a skipped privileged test counts as a failure: fixtures/privilege.ts
// refuses to skip there, so the real path has to run.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const FILE_TIMEOUT_MS = Number(process.env.SWITCHOVER_TEST_TIMEOUT_MS ?? 600_000);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

function toCompiled(arg) {
  const rel = relative(root, join(process.cwd(), arg)).replace(/\.ts$/, '.js');
  return rel.startsWith('dist/') ? join(root, rel) : join(root, 'dist', rel);
}

const wanted = process.argv.slice(2).map(toCompiled);
const all = findTests(join(root, 'dist'));
const files = wanted.length ? wanted : all.filter((f) => !/soak\.test\.js$/.test(f) || process.env.SOAK_FULL);

let passed = 0, failed = 0, skipped = 0;
const failedFiles = [];

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    const timer = setTimeout(() => { out += `\n[run-tests] ${file}: timed out after ${FILE_TIMEOUT_MS} ms\n`; child.kill('SIGKILL'); }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const num = (label) => Number(out.match(new RegExp(`${label}:\\s+(\\d+)`))?.[1] ?? NaN);
      const total = num('Total'), pass = num('Passed'), skip = num('Skipped');
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (Number.isNaN(total)) {
        failed += 1; failedFiles.push(`${relative(root, file)} (no uvu summary; exit ${code ?? signal})`);
      } else {
        passed += pass; skipped += skip; failed += total - pass - skip;
        if (code !== 0 || total - pass - skip > 0) {
          if (total - pass - skip === 0) failed += 1;
          failedFiles.push(`${relative(root, file)} (exit ${code ?? signal})`);
        }
      }
      console.log(`[run-tests] ${relative(root, file)}: ${secs}s`);
      resolve();
    });
  });
}

for (const f of files) await runFile(f);
if (failedFiles.length) console.log(`\nfailed files:\n  ${failedFiles.join('\n  ')}`);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
