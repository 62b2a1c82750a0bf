// The QMP command table: argument checking with QEMU's error wording (qapi/qobject-input-visitor.c:
// "Parameter 'x' is missing", "Invalid parameter type for 'x', expected: string",
// "Parameter 'x' is unexpected") and dispatch to handlers.
import { QmpError, type QmpDispatch } from './server.js';

export type ArgType = 'str' | 'int' | 'number' | 'bool' | 'array' | 'object';
export interface ArgSpec { type: ArgType; optional?: boolean }

export interface CommandDef {
  /** Accepted arguments. */
  args: Record<string, ArgSpec>;
  run(args: Record<string, unknown>): unknown | Promise<unknown>;
}

const TYPE_NAME: Record<ArgType, string> = { str: 'string', int: 'integer', number: 'number', bool: 'boolean', array: 'array', object: 'object' };

function typeOk(t: ArgType, v: unknown): boolean {
  switch (t) {
    case 'str': return typeof v === 'string';
    case 'int': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'bool': return typeof v === 'boolean';
    case 'array': return Array.isArray(v);
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
}

/**
 * Own properties only, on both sides: `k in spec` would find `toString` on Object.prototype and
 * accept `{"uri": ..., "toString": 1}`, which QEMU's visitor rejects as unexpected.
 */
export function checkArgs(spec: CommandDef['args'], args: Record<string, unknown>): void {
  for (const k of Object.keys(args)) {
    if (!Object.hasOwn(spec, k)) throw new QmpError('GenericError', `Parameter '${k}' is unexpected`);
  }
  for (const [k, s] of Object.entries(spec)) {
    if (!Object.hasOwn(args, k)) {
      if (!s.optional) throw new QmpError('GenericError', `Parameter '${k}' is missing`);
      continue;
    }
    if (!typeOk(s.type, args[k])) throw new QmpError('GenericError', `Invalid parameter type for '${k}', expected: ${TYPE_NAME[s.type]}`);
  }
}

/** A dispatcher over a command table; unknown commands get CommandNotFound as in QEMU. */
export function dispatcher(table: Map<string, CommandDef>): QmpDispatch {
  return (command, args) => {
    const def = table.get(command);
    if (!def) throw new QmpError('CommandNotFound', `The command ${command} has not been found`);
    checkArgs(def.args, args);
    return def.run(args);
  };
}
