// The real QEMU builds switchover runs side by side: Debian 12's 7.2 on PATH (the default) and
// 10.0 from bookworm-backports, which `npm run setup -- --qemu-backports` unpacks into
// .cache/qemu-10 with a wrapper that points it at its own firmware (scripts/setup.sh). Either
// is a `--qemu PATH`; the tests and the fidelity bench run both.
//
// API
//   SYSTEM_QEMU, BACKPORTS_QEMU        the two binaries (BACKPORTS_QEMU may not be there yet)
//   qemuBuilds() -> QemuBuild[]        both, each with `missing` set when it is not installed
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { whichTool } from '../net/exec.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export const SYSTEM_QEMU = 'qemu-system-x86_64';
export const BACKPORTS_QEMU = join(repoRoot, '.cache', 'qemu-10', 'qemu-system-x86_64');

export interface QemuBuild {
  /** e.g. "qemu 10.0" */
  label: string;
  binary: string;
  /** Why it cannot run here, with the command that installs it. */
  missing?: string;
}

export function qemuBuilds(): QemuBuild[] {
  const onPath = whichTool(SYSTEM_QEMU) !== undefined;
  return [
    { label: 'qemu 7.2', binary: SYSTEM_QEMU, ...(onPath ? {} : { missing: `${SYSTEM_QEMU} is not on PATH: run \`npm run setup\` (apt-get install qemu-system-x86)` }) },
    { label: 'qemu 10.0', binary: BACKPORTS_QEMU, ...(existsSync(BACKPORTS_QEMU) ? {} : { missing: `${BACKPORTS_QEMU} is not there: run \`npm run setup -- --qemu-backports\`` }) },
  ];
}
