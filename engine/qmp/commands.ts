// The QMP command table, typed by lib/qmp-protocol.ts (the harness's client uses the same
// types): each handler takes `QmpCommands[C]['args']` and returns `QmpCommands[C]['ret']`, and
// each argument spec must list exactly the protocol's members, optional where they are.
// Arguments are checked with QEMU's error wording (qapi/qobject-input-visitor.c: "Parameter
// 'x' is missing", "Invalid parameter type for 'x', expected: string", "Parameter 'x' is
// unexpected") before dispatch. The check is one level deep: the elements of an array
// argument are the handler's to check.
import type { QmpCommandName, QmpCommands, SchemaInfo } from '../../lib/qmp-protocol.js';
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
  /** The QAPI name of the argument object in query-qmp-schema (default `q_obj_<command>-arg`, as QEMU names implicit ones). */
  argType?: string;
  /** The error for an argument the spec lacks, where QEMU words it otherwise (device_add: a qdev property not found). */
  unexpected?: (name: string) => string;
  run(args: CommandArgs<C>): QmpCommands[C]['ret'] | Promise<QmpCommands[C]['ret']>;
}

/** Handlers by command name; a VM implements a subset of the protocol. */
export type CommandTable = { readonly [C in QmpCommandName]?: CommandDef<C> };

/** A table entry seen from the dispatcher, which only knows the name is a string. */
interface UncheckedDef { args: Record<string, ArgSpec>; argType?: string; unexpected?: (name: string) => string; run(args: never): unknown }

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
export function checkArgs(spec: Record<string, ArgSpec>, args: Record<string, unknown>,
  unexpected = (k: string): string => `Parameter '${k}' is unexpected`): void {
  for (const k of Object.keys(args)) {
    if (!Object.hasOwn(spec, k)) throw new QmpError('GenericError', unexpected(k));
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
    checkArgs(def.args, args, def.unexpected);
    // checkArgs has just held `args` to the spec that ArgSpecs ties to the protocol's type.
    return def.run(args as never);
  };
}

/** ArgType as a QAPI builtin; arrays and objects are checked one level deep, so `any` is what is known of them. */
const SCHEMA_TYPE: Record<ArgType, string> = { str: 'str', int: 'int', number: 'number', bool: 'bool', array: 'any', object: 'any' };
const BUILTINS: SchemaInfo[] = [
  { name: 'str', 'meta-type': 'builtin', 'json-type': 'string' },
  { name: 'int', 'meta-type': 'builtin', 'json-type': 'int' },
  { name: 'number', 'meta-type': 'builtin', 'json-type': 'number' },
  { name: 'bool', 'meta-type': 'builtin', 'json-type': 'boolean' },
  { name: 'any', 'meta-type': 'builtin', 'json-type': 'value' },
];

/**
 * query-qmp-schema (qapi/introspect.json) for a command table: each command with its argument
 * object, whose members are the table's own argument specs, so the schema cannot tell of an
 * argument the dispatcher would refuse. Return values are `any`: the table does not describe them.
 * QEMU masks non-builtin type names as numbers; these keep theirs, which no client may rely on.
 */
export function introspect(table: CommandTable): SchemaInfo[] {
  const defs = table as Readonly<Record<string, UncheckedDef | undefined>>;
  const out: SchemaInfo[] = [...BUILTINS, { name: 'q_empty', 'meta-type': 'object', members: [] }];
  for (const [name, def] of Object.entries(defs)) {
    if (!def) continue;
    const members = Object.entries(def.args).map(([m, spec]) => ({ name: m, type: SCHEMA_TYPE[spec.type], ...(spec.optional ? { default: null } : {}) }));
    const argType = members.length ? def.argType ?? `q_obj_${name}-arg` : 'q_empty';
    if (members.length) out.push({ name: argType, 'meta-type': 'object', members });
    out.push({ name, 'meta-type': 'command', 'arg-type': argType, 'ret-type': 'any' });
  }
  return out;
}
