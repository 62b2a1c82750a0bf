// Output paths of `switchover run` and `baseline save` (--json, --junit, --report, --keep-pcaps,
// the baseline file): each is checked before anything is built, so a path that cannot be
// written is a one-line error (exit 2) and not a lost run. The check creates nothing: a missing
// parent directory is the user's to create, and no recursive mkdir ever runs on a user path
// (on /proc it never returns, issue 18). Writing once the results exist never loses them: a
// write that fails still leaves them in a private temp file, named in the error.
//
// API
//   checkOutputFile(option, file)    throws InputError unless `file` can be created or replaced
//   checkOutputDir(option, dir)      the same for a directory that is created if missing
//   writeOutput(option, file, write) write(file); on failure write a copy elsewhere and say where
//   OutputError                      a write that failed after the run, with where the text went
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, mkdtempSync, openSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../scenario/schema.js';

const errno = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** A directory we can create entries in, proven by creating one (O_EXCL, so no symlink is followed). */
function checkWritableDir(where: string, dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    if (errno(e) === 'ENOENT') throw new InputError(where, '', `directory ${dir} does not exist: create it first (mkdir -p ${dir})`, { cause: e });
    throw new InputError(where, '', `cannot use directory ${dir}: ${errno(e)}`, { cause: e });
  }
  if (!st.isDirectory()) throw new InputError(where, '', `${dir} is not a directory`);
  const probe = join(dir, `.switchover-probe-${randomBytes(6).toString('hex')}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
  } catch (e) {
    throw new InputError(where, '', `cannot create files in ${dir} (${errno(e)}): choose a writable directory`, { cause: e });
  }
  unlinkSync(probe);
}

/** `file` can be written: an existing writable file, or a new name in a writable directory. */
export function checkOutputFile(option: string, file: string): void {
  const where = `${option} ${file}`;
  if (!file) throw new InputError(option, '', 'expected a file name, got nothing');
  const path = resolve(file);
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw new InputError(where, '', `cannot use this path: ${errno(e)}`, { cause: e });
  }
  if (st?.isDirectory()) throw new InputError(where, '', `is a directory: give a file name, e.g. ${join(file, `results${option === '--junit' ? '.xml' : option === '--report' ? '.html' : '.json'}`)}`);
  if (st) {
    try {
      accessSync(path, constants.W_OK);
    } catch (e) {
      throw new InputError(where, '', `cannot write this file (${errno(e)}): choose another path`, { cause: e });
    }
    return;
  }
  checkWritableDir(where, dirname(path));
}

/** `dir` exists as a writable directory, or can be created in one (one level: the user named it). */
export function checkOutputDir(option: string, dir: string): void {
  const where = `${option} ${dir}`;
  if (!dir) throw new InputError(option, '', 'expected a directory, got nothing');
  const path = resolve(dir);
  let exists = true;
  try {
    statSync(path);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw new InputError(where, '', `cannot use this path: ${errno(e)}`, { cause: e });
    exists = false;
  }
  checkWritableDir(where, exists ? path : dirname(path));
}

/** A write of results that failed after the run; `savedTo` holds the text instead. */
export class OutputError extends Error {
  constructor(readonly option: string, readonly file: string, readonly savedTo: string | undefined, options: ErrorOptions) {
    const why = errno(options.cause);
    super(`${option} ${file}: cannot write (${why}); ${savedTo ? `the output is saved in ${savedTo}` : 'no copy could be saved either'}`, options);
    this.name = 'OutputError';
  }
}

/**
 * `write(file)`; if that fails, `write` again into a new private temp directory, and throws
 * OutputError naming both, so results computed at length are never lost to a bad path.
 */
export async function writeOutput(option: string, file: string, write: (file: string) => unknown): Promise<void> {
  try {
    await write(file);
  } catch (e) {
    let savedTo: string | undefined = join(mkdtempSync(join(tmpdir(), 'switchover-output-')), basename(file));
    try {
      await write(savedTo);
    } catch {
      savedTo = undefined;
    }
    throw new OutputError(option, file, savedTo, { cause: e });
  }
}
