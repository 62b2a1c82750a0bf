// The QMP command table, typed by lib/qmp-protocol.ts (the harness's client uses the same
// types): each handler takes `QmpCommands[C]['args']` and returns `QmpCommands[C]['ret']`, and
// each argument spec must list exactly the protocol's members, optional where they are.
// Arguments are checked with QEMU's error wording (qapi/qobject-input-visitor.c: "Parameter
// 'x' is missing", "Invalid parameter type for 'x', expected: string", "Parameter 'x' is
// unexpected") before dispatch. The check is one level deep: the elements of an array
// argument are the handler's to check.
import type { QmpCommandName, QmpCommands } from '../../lib/qmp-protocol.js';
import { QmpError, type QmpDispatch } from './server.js';

export type ArgType = 'str' | 'int' | 'number' | 'bool' | 'array' | 'object';
export interface ArgSpec { type: ArgType; optional?: boolean }

/** What a handler gets: the protocol's arguments, `{}` for a command that takes none. */
export type CommandArgs<C extends QmpCommandName> =
  QmpCommands[C]['args'] extends undefined ? Record<never, never> : NonNullable<QmpCommands[C]['args']>;

/** The wire types a TypeScript member type may be checked as. */
type WireType<V> = [V] extends [string] ? 'str' : [V] extends [number] ? 'int' | 'number' : [V] extends [boolean] ? 'bool'
  : [V] extends [readonly unknown[]] ? 'array' : 'object';

/** One spec per member of A, `optional: true` exactly where A's member is optional; none for none. */
export type ArgSpecs<A> = [keyof A] extends [never] ? Record<string, never> : {
  [K in keyof A]-?: { type: WireType<NonNullable<A[K]>> } & ({} extends Pick<A, K> ? { optional: true } : { optional?: false });
};

export interface CommandDef<C extends QmpCommandName> {
  args: ArgSpecs<CommandArgs<C>>;
  run(args: CommandArgs<C>): QmpCommands[C]['ret'] | Promise<QmpCommands[C]['ret']>;
}

/** Handlers by command name; a VM implements a subset of the protocol. */
export type CommandTable = { readonly [C in QmpCommandName]?: CommandDef<C> };

/** A table entry seen from the dispatcher, which only knows the name is a string. */
interface UncheckedDef { args: Record<string, ArgSpec>; run(args: never): unknown }

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
export function checkArgs(spec: Record<string, ArgSpec>, args: Record<string, unknown>): void {
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
export function dispatcher(table: CommandTable): QmpDispatch {
  const defs = table as Readonly<Record<string, UncheckedDef | undefined>>;
  return (command, args) => {
    const def = Object.hasOwn(defs, command) ? defs[command] : undefined;
    if (!def) throw new QmpError('CommandNotFound', `The command ${command} has not been found`);
    checkArgs(def.args, args);
    // checkArgs has just held `args` to the spec that ArgSpecs ties to the protocol's type.
    return def.run(args as never);
  };
}
