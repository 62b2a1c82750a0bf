#!/usr/bin/env node
// Package entry. `switchover vm ...` is the engine VM (engine/main.ts); every other
// subcommand is the harness CLI. Keeping the split here means the harness never
// imports engine code: it starts `switchover vm` like it starts qemu-system-x86_64.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = process.argv[2] === 'vm' ? 'dist/engine/main.js' : 'dist/harness/cli/main.js';
if (!existsSync(join(root, entry))) {
  process.stderr.write(`switchover: ${entry} is missing: run \`npm install\` (or \`npm run build\`) in ${root}\n`);
  process.exit(2);
}
const mod = await import(join(root, entry));
await mod.main(process.argv.slice(process.argv[2] === 'vm' ? 3 : 2));
