// The QMP error a command handler threw, for tests that call handlers directly.
import * as assert from 'uvu/assert';
import { QmpError } from '../server.js';

export function refused(f: () => unknown): { class: string; desc: string } {
  try {
    f();
  } catch (e) {
    assert.instance(e, QmpError);
    return { class: (e as QmpError).errorClass, desc: (e as QmpError).message };
  }
  throw new Error('expected a QmpError');
}
