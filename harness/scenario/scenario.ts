// The scenario format: `defineScenario` for catalogue files, `validateScenario` for anything
// loaded (TypeScript modules and JSON files alike), `applyOverrides` for `--set`, and the
// per-backend questions a runner asks (expectations, unsupported features, cont delay).
// Validation happens before anything runs, so a bad file or `--set` never starts a VM.
//
// Defaults, chosen so that a scenario states only what it is about:
//   topology   bridge layout, 1 queue, vhost off
//   guest      256 MiB, dirtying 2000 pages/s
//   migration  capabilities events + return-path (events give the harness its timeline;
//              the return path carries VM_STARTED, which ends the measured downtime and
//              which netpass needs), no parameters (the backend's defaults), not local
//   traffic    one ping flow at 1 ms, at least 600 ms long, migrate 200 ms after it starts
//              (the runner keeps traffic going until 500 ms after the last hop)
//   flows      ping 1 ms; udp 10,000 packets/s into the guest
//   faults     none; expect: migration completes, nothing else checked
import { NETPASS_ORDERS, NETPASS_TRIGGERS, type MigrationCapabilityName, type MigrationParameters } from '../../lib/qmp-protocol.js';
import type {
  BackendFeatures, BackendName, Expectations, FaultPhase, FaultStep, Scenario, UdpTraffic,
} from './types.js';
import {
  type ArraySchema, type Field, InputError, type NumberSchema, type ObjectSchema, type Schema, type UnionSchema,
  check, describeGot, didYouMean, isPlainObject, join, mergeDefaults, own, quote, unknownField,
} from './schema.js';

export { InputError } from './schema.js';

/** What a scenario file writes: name and description, plus whatever differs from the defaults. */
export interface ScenarioInput {
  name: string;
  description: string;
  topology?: Partial<Scenario['topology']>;
  requires?: Scenario['requires'];
  guest?: Partial<Scenario['guest']>;
  migration?: Partial<Scenario['migration']>;
  traffic?: { flows?: TrafficInput[]; durationMs?: number; migrateAfterMs?: number };
  faults?: FaultStep[];
  deadlineMs?: number;
  expect?: Expectations;
  expectByBackend?: Scenario['expectByBackend'];
}
export type TrafficInput =
  | { kind: 'ping'; intervalMs?: number }
  | { kind: 'udp'; rate?: number; direction?: UdpTraffic['direction']; port?: number };

const DEFAULTS = {
  topology: { layout: 'bridge', queues: 1, vhost: false },
  guest: { memMB: 256, dirtyRate: 2000 },
  migration: { capabilities: ['events', 'return-path'], parameters: {}, local: false },
  traffic: { flows: [{ kind: 'ping', intervalMs: 1 }], durationMs: 600, migrateAfterMs: 200 },
  faults: [],
  expect: {},
} satisfies Omit<Scenario, 'name' | 'description' | 'traffic'> & { traffic: object };

const FLOW_DEFAULTS: Record<string, object> = {
  ping: { intervalMs: 1 },
  udp: { rate: 10_000, direction: 'to-guest' },
};

/** A scenario with every default filled in. Catalogue files default-export this. */
export function defineScenario(input: ScenarioInput): Scenario {
  return withDefaults(input) as Scenario;
}

function withDefaults(input: unknown): unknown {
  const full = mergeDefaults(DEFAULTS, input);
  const traffic = isPlainObject(full) ? full.traffic : undefined;
  if (isPlainObject(traffic) && Array.isArray(traffic.flows)) {
    traffic.flows = traffic.flows.map((flow: unknown) =>
      isPlainObject(flow) && typeof flow.kind === 'string' && own(FLOW_DEFAULTS, flow.kind)
        ? mergeDefaults({ kind: flow.kind, ...own(FLOW_DEFAULTS, flow.kind) }, flow) : flow);
  }
  return full;
}

/** Fault steps as typed data, usable in any scenario's `faults`. */
export const fault = {
  /** SIGKILL the destination VM when the source reaches `at`, `delayMs` later. */
  killDestination: (at: FaultPhase, delayMs = 0): FaultStep => ({ kind: 'kill-destination', at, delayMs }),
  /** Shut the migration socket down under both VMs at `at`. */
  cutChannel: (at: FaultPhase, delayMs = 0): FaultStep => ({ kind: 'cut-channel', at, delayMs }),
  /** `migrate_cancel` on the source at `at`. */
  cancel: (at: FaultPhase, delayMs = 0): FaultStep => ({ kind: 'cancel', at, delayMs }),
  /** Start the destination with -S and `cont` it this long after completion. */
  delayCont: (delayMs: number): FaultStep => ({ kind: 'delay-cont', delayMs }),
  /** Drop RARP and gratuitous ARP from the destination TAP in the host netns (nftables). */
  dropAnnounce: (): FaultStep => ({ kind: 'drop-announce' }),
  /** Set the destination TAP down for `delayMs`, from `at` (default: completion). */
  pauseDestinationTap: (delayMs: number, at: FaultPhase = 'completed'): FaultStep =>
    ({ kind: 'pause-destination-tap', at, delayMs }),
};

// ---- schema ------------------------------------------------------------------------------

const CAPABILITIES: Record<MigrationCapabilityName, true> = {
  events: true, 'return-path': true, 'x-ignore-shared': true, 'pause-before-switchover': true, netpass: true,
};
const PHASES: Record<FaultPhase, true> = {
  setup: true, active: true, 'pre-switchover': true, device: true, completed: true, 'after-completion': true,
};

/** Every phase a fault can fire at, in migration order (for fault matrices, issue 9). */
export const FAULT_PHASES = Object.keys(PHASES) as FaultPhase[];

const int = (min: number, max: number, unit?: string): NumberSchema => ({ type: 'number', integer: true, min, max, ...(unit ? { unit } : {}) });
const req = (schema: Schema): Field => ({ schema });
const opt = (schema: Schema): Field => ({ schema, optional: true });
const bool: Schema = { type: 'boolean' };
const capabilityList: ArraySchema = { type: 'array', items: { type: 'enum', values: Object.keys(CAPABILITIES) }, unique: true };
const phase: Schema = { type: 'enum', values: Object.keys(PHASES) };
const delayMs = int(0, 60_000, 'ms');

// Bounds follow QEMU's migrate_params_check() (migration/options.c).
const PARAMETERS: Record<Exclude<keyof MigrationParameters, 'local'>, Field> = {
  'downtime-limit': opt(int(0, 2_000_000, 'ms')),
  'max-bandwidth': opt(int(0, Number.MAX_SAFE_INTEGER, 'bytes/s')),
  'announce-initial': opt(int(0, 100_000, 'ms')),
  'announce-max': opt(int(0, 100_000, 'ms')),
  'announce-rounds': opt(int(0, 1000)),
  'announce-step': opt(int(1, 10_000, 'ms')),
  'netpass-max-packets': opt(int(1, 1_000_000)),
  'netpass-max-bytes': opt(int(1, 1 << 30, 'bytes')),
  // switchover's own netpass variants (issue 17, lib/qmp-protocol.ts); 0 = no age limit.
  'x-netpass-trigger': opt({ type: 'enum', values: NETPASS_TRIGGERS }),
  'x-netpass-order': opt({ type: 'enum', values: NETPASS_ORDERS }),
  'x-netpass-max-age-ms': opt(int(0, 60_000, 'ms')),
};
/** The parameters that only the netpass capability reads: set without it they would do nothing. */
const NETPASS_ONLY_PARAMETERS = ['x-netpass-trigger', 'x-netpass-order', 'x-netpass-max-age-ms'] as const;

/** Scenario.deadlineMs: from a microsecond (the captures' resolution) to a minute. */
const DEADLINE: NumberSchema = { type: 'number', min: 0.001, max: 60_000, unit: 'ms' };
const DEADLINE_FORMS = '20ms, 20 (ms) or 0.02s';

/**
 * A deadline as `--set deadline=` and `switchover analyze --deadline` take it: `20ms`, `20`
 * (ms) or `0.02s`, within DEADLINE's bounds; in ms. One parser for both, so they agree.
 */
export function parseDeadlineMs(raw: string, where: string, field = 'deadline'): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(ms|s)?$/.exec(raw);
  if (!m) throw new InputError(where, field, `expected a deadline like ${DEADLINE_FORMS}, got ${describeGot(raw)}`);
  // Seconds to ms without binary noise (0.0015 s is 1.5 ms, not 1.5000000000000002).
  const ms = m[2] === 's' ? Math.round(Number(m[1]) * 1e9) / 1e6 : Number(m[1]);
  if (!(ms >= DEADLINE.min && ms <= DEADLINE.max)) {
    throw new InputError(where, field, `expected a deadline from ${DEADLINE.min} to ${DEADLINE.max} ms (${DEADLINE_FORMS}), got ${describeGot(raw)}`);
  }
  return ms;
}

const EXPECTATIONS: ObjectSchema = {
  type: 'object',
  fields: {
    lost: opt(int(0, 10_000_000)),
    minLost: opt(int(1, 10_000_000)),
    maxOutageMs: opt({ type: 'number', min: 0, max: 600_000, unit: 'ms' }),
    maxAddedLatencyMs: opt({ type: 'number', min: 0, max: 600_000, unit: 'ms' }),
    duplicates: opt(int(0, 10_000_000)),
    reordered: opt(int(0, 10_000_000)),
    maxLostOrLate: opt(int(0, 10_000_000)),
    minAnnounces: opt(int(0, 1000)),
    minPasses: opt(int(1, 1000)),
    migrationStatus: opt({ type: 'enum', values: ['completed', 'failed', 'cancelled'] }),
  },
};

/** A union variant: its tag field (`kind`) is checked by the union; here it only has to be that tag. */
const variant = (tag: string, fields: Record<string, Field>): ObjectSchema =>
  ({ type: 'object', fields: { kind: req({ type: 'enum', values: [tag] }), ...fields } });
const migrationFault = (tag: string): ObjectSchema => variant(tag, { at: req(phase), delayMs: opt(delayMs) });

/** The scenario schema, for tools and tests that walk every field. */
export const SCENARIO_SCHEMA: ObjectSchema = {
  type: 'object',
  fields: {
    name: req({
      type: 'string', pattern: /^[a-z0-9][a-z0-9-]{0,62}$/,
      describe: 'a name of lowercase letters, digits and "-" (at most 63, not starting with "-")',
    }),
    description: req({ type: 'string', pattern: /^[^\x00-\x1f\x7f]{1,160}$/, describe: 'one line of text (1 to 160 characters)' }),
    topology: req({
      type: 'object',
      fields: { layout: req({ type: 'enum', values: ['bridge', 'routed'] }), queues: req(int(1, 16)), vhost: req(bool) },
    }),
    requires: opt({ type: 'object', fields: { capabilities: opt(capabilityList), local: opt(bool), vhost: opt(bool) } }),
    guest: req({
      type: 'object',
      fields: {
        memMB: req(int(16, 65_536, 'MiB')),
        dirtyRate: req(int(0, 10_000_000, 'pages/s')),
      },
      hints: { startNetworkDelayMs: 'neither backend can delay the guest\'s own network; for a network that comes up late use faults: [{ "kind": "pause-destination-tap", "at": "completed", "delayMs": N }] (scenarios/late-guest-network.ts)' },
    }),
    migration: req({
      type: 'object',
      fields: {
        capabilities: req(capabilityList),
        parameters: req({
          type: 'object', fields: PARAMETERS,
          hints: { local: 'set migration.local instead (the harness sets the `local` parameter on both sides)' },
        }),
        local: req(bool),
        contDelayMs: opt(delayMs),
        hops: opt(int(1, 100)),
        transport: opt({ type: 'enum', values: ['unix', 'tcp'] }),
      },
    }),
    traffic: req({
      type: 'object',
      fields: {
        flows: req({
          type: 'array', minItems: 1, maxItems: 8,
          items: {
            type: 'union', tag: 'kind',
            variants: {
              // iputils takes -i in seconds but keeps whole milliseconds: below 1 ms it floods.
              ping: variant('ping', { intervalMs: req(int(1, 1000, 'ms')) }),
              udp: variant('udp', {
                rate: req(int(1, 100_000, 'packets/s')),
                direction: req({ type: 'enum', values: ['to-guest', 'from-guest', 'both'] }),
                port: opt(int(1, 65_535)),
              }),
            },
          },
        }),
        durationMs: req(int(100, 600_000, 'ms')),
        migrateAfterMs: req(int(0, 600_000, 'ms')),
      },
    }),
    faults: req({
      type: 'array', maxItems: 8,
      items: {
        type: 'union', tag: 'kind',
        variants: {
          'kill-destination': migrationFault('kill-destination'),
          'cut-channel': migrationFault('cut-channel'),
          cancel: migrationFault('cancel'),
          'delay-cont': variant('delay-cont', { delayMs: req(delayMs) }),
          'drop-announce': variant('drop-announce', {}),
          'pause-destination-tap': variant('pause-destination-tap', { at: opt(phase), delayMs: req(int(1, 60_000, 'ms')) }),
        },
      },
    }),
    deadlineMs: opt(DEADLINE),
    expect: req(EXPECTATIONS),
    expectByBackend: opt({ type: 'object', fields: { engine: opt(EXPECTATIONS), qemu: opt(EXPECTATIONS) } }),
  },
  check: (v, where) => crossCheck(v as unknown as Scenario, where),
};

/** Rules across fields: each mirrors an error the engine or QEMU would give later, after VMs started. */
function crossCheck(s: Scenario, where: string): void {
  const caps = s.migration.capabilities;
  if (caps.includes('netpass') && !caps.includes('return-path')) {
    throw new InputError(where, 'migration.capabilities',
      `expected "return-path" as well when "netpass" is on (netpass waits for the return path's VM_STARTED), got ${describeGot(caps)}`);
  }
  if (caps.includes('netpass') && s.topology.vhost) {
    throw new InputError(where, 'topology.vhost',
      'expected false when migration.capabilities has "netpass" (net filters cannot see vhost queues), got true');
  }
  if (s.migration.local && s.migration.transport === 'tcp') {
    throw new InputError(where, 'migration.transport',
      'expected "unix" when migration.local is true (the TAP fds travel over a UNIX socket), got "tcp"');
  }
  if (s.traffic.migrateAfterMs >= s.traffic.durationMs) {
    throw new InputError(where, 'traffic.migrateAfterMs',
      `expected less than traffic.durationMs (${s.traffic.durationMs}), got ${s.traffic.migrateAfterMs}`);
  }
  s.faults.forEach((f, i) => {
    if (f.kind === 'delay-cont' && s.migration.contDelayMs !== undefined) {
      throw new InputError(where, `faults[${i}]`,
        `expected no delay-cont fault when migration.contDelayMs is set (${s.migration.contDelayMs}), got one`);
    }
  });
  // A setting that is accepted must have an effect: these parameters are read by netpass only.
  if (!caps.includes('netpass')) {
    for (const p of NETPASS_ONLY_PARAMETERS) {
      if (s.migration.parameters[p] === undefined) continue;
      throw new InputError(where, `migration.parameters.${p}`,
        `${p} has no effect without the netpass capability; add --set netpass=on (or "netpass" to migration.capabilities)`);
    }
  }
  for (const backend of [undefined, 'engine', 'qemu'] as const) {
    const e = backend ? effectiveExpectations(s, backend) : s.expect;
    const path = backend && s.expectByBackend?.[backend] ? `expectByBackend.${backend}` : 'expect';
    // Late is only defined against a deadline (analyzer.ts: lostOrLate).
    if (e.maxLostOrLate !== undefined && s.deadlineMs === undefined) {
      throw new InputError(where, `${path}.maxLostOrLate`,
        'expected deadlineMs to be set (a packet is late only against a deadline); set deadline, e.g. --set deadline=20ms or "deadlineMs": 20');
    }
    if (e.lost !== undefined && e.minLost !== undefined && e.minLost > e.lost) {
      throw new InputError(where, `${path}.minLost`, `expected no more than lost (${e.lost}) when both are set, got ${e.minLost}`);
    }
  }
}

/**
 * Fills the defaults into a scenario object (a module's default export or parsed JSON) and
 * checks every field. `where` names the input in errors: `scenarios/foo.ts`, `./my.json`.
 */
export function validateScenario(input: unknown, where: string): Scenario {
  if (!isPlainObject(input)) {
    throw new InputError(where, '', `expected a scenario object (defineScenario({...}) or JSON), got ${describeGot(input)}`);
  }
  const full = withDefaults(input);
  check(SCENARIO_SCHEMA, full, where, '');
  return full as Scenario;
}

// ---- --set ------------------------------------------------------------------------------

type Override = (s: Scenario, value: string, where: string) => void;

/** A `--set` short name: what it sets and the value it takes (for `switchover show`), and how. */
export interface Alias {
  /** The field it sets; `traffic.flows[ping]` stands for every ping flow. */
  sets: string;
  /** The value it takes: the type, bounds and unit. */
  schema: Schema;
  /** Its value in `s`; a list when it sets several fields, undefined when it sets none. */
  get: (s: Scenario) => unknown;
  apply: Override;
}

/** The schema of the field at a path of object fields (`guest.memMB`). */
function schemaAt(path: string): Schema {
  let schema: Schema = SCENARIO_SCHEMA;
  for (const key of path.split('.')) {
    const field: Field | undefined = schema.type === 'object' ? own(schema.fields, key) : undefined;
    if (!field) throw new Error(`--set alias: the scenario schema has no field ${path}`);
    schema = field.schema;
  }
  return schema;
}

const eachFlow = (kind: 'ping' | 'udp', field: string): Alias => {
  const flows = schemaAt('traffic.flows') as ArraySchema & { items: UnionSchema };
  const schema = own(flows.items.variants[kind]!.fields, field)?.schema;
  if (!schema) throw new Error(`--set alias: a ${kind} flow has no field ${field}`);
  return {
    sets: `traffic.flows[${kind}].${field}`, schema,
    get: (s) => {
      const v = s.traffic.flows.flatMap((f) => (f.kind === kind ? [(f as unknown as Record<string, unknown>)[field]] : []));
      return v.length > 1 ? v : v[0];
    },
    apply: (s, value, where) => {
      const indexes = s.traffic.flows.flatMap((f, i) => (f.kind === kind ? [i] : []));
      if (!indexes.length) {
        throw new InputError(where, 'traffic.flows', `expected a ${kind} flow to set ${field} on, got none; add one with traffic.flows=[...]`);
      }
      for (const i of indexes) setPath(s, `traffic.flows[${i}].${field}`, value, where);
    },
  };
};
const at = (path: string): Alias => ({
  sets: path, schema: schemaAt(path),
  get: (s) => path.split('.').reduce<unknown>((v, k) => (isPlainObject(v) ? v[k] : undefined), s),
  apply: (s, value, where) => setPath(s, path, value, where),
});

/** Short names for the settings people change most (issue 6: reproduce a report without editing files). */
export const ALIASES: Record<string, Alias> = {
  interval: eachFlow('ping', 'intervalMs'),
  rate: eachFlow('udp', 'rate'),
  direction: eachFlow('udp', 'direction'),
  mem: at('guest.memMB'),
  'guest-size': at('guest.memMB'),
  'dirty-rate': at('guest.dirtyRate'),
  capabilities: at('migration.capabilities'),
  layout: at('topology.layout'),
  queues: at('topology.queues'),
  vhost: at('topology.vhost'),
  local: at('migration.local'),
  transport: at('migration.transport'),
  hops: at('migration.hops'),
  'cont-delay': at('migration.contDelayMs'),
  duration: at('traffic.durationMs'),
  'migrate-after': at('traffic.migrateAfterMs'),
  deadline: {
    sets: 'deadlineMs (20ms, 20 or 0.02s)', schema: DEADLINE,
    get: (s) => s.deadlineMs,
    apply: (s, value, where) => { s.deadlineMs = parseDeadlineMs(value, where); },
  },
  'netpass-trigger': at('migration.parameters.x-netpass-trigger'),
  'netpass-order': at('migration.parameters.x-netpass-order'),
  'netpass-max-age': at('migration.parameters.x-netpass-max-age-ms'),
  netpass: {
    sets: 'migration.capabilities (netpass, with return-path)', schema: bool,
    get: (s) => s.migration.capabilities.includes('netpass'),
    apply: (s, value, where) => {
      const on = parseSwitch(value);
      if (on === undefined) throw new InputError(where, 'netpass', `expected on or off, got ${describeGot(value)}`);
      const caps: MigrationCapabilityName[] = s.migration.capabilities.filter((c) => c !== 'netpass');
      // netpass needs the return path (it waits for VM_STARTED), so turning it on turns that on too.
      if (on) caps.push(...(caps.includes('return-path') ? [] : ['return-path' as const]), 'netpass');
      s.migration.capabilities = caps;
    },
  },
};
/** `param.NAME` sets migration.parameters.NAME; the first spelling is the one `switchover show` prints. */
export const PARAM_PREFIXES = ['param.', 'parameter.', 'parameters.'];

/** Every name `--set` accepts at the top: the aliases, `param.NAME`, and dot paths into the scenario. */
export function overrideKeys(): string[] {
  return [...Object.keys(ALIASES), ...Object.keys(PARAMETERS).map((p) => `param.${p}`), ...Object.keys(SCENARIO_SCHEMA.fields)];
}

/**
 * Applies `--set key=value` overrides, in order, to a copy of the scenario and validates the
 * result. Keys are aliases (`interval`, `rate`, `mem`, `dirty-rate`, `capabilities`,
 * `param.downtime-limit`, `layout`, `queues`, `local`, `netpass`, ...) or dot paths
 * (`traffic.flows[0].intervalMs`). Values are coerced to the field's type; lists are
 * comma-separated; objects and lists may also be given as JSON.
 */
export function applyOverrides(scenario: Scenario, sets: readonly string[]): Scenario {
  const s = structuredClone(scenario);
  for (const arg of sets) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new InputError('--set', '', `expected key=value, got ${describeGot(arg)}`);
    const key = arg.slice(0, eq).trim();
    const value = arg.slice(eq + 1).trim();
    const where = `--set ${arg}`;
    const prefix = PARAM_PREFIXES.find((p) => key.startsWith(p));
    const alias = own(ALIASES, key);
    if (alias) alias.apply(s, value, where);
    else if (prefix) setPath(s, `migration.parameters.${key.slice(prefix.length)}`, value, where);
    else if (own(SCENARIO_SCHEMA.fields, key.split(/[.[]/)[0]!)) setPath(s, key, value, where);
    else {
      const guess = didYouMean(key, overrideKeys());
      // A few examples and where the full list is, not every alias: the message stays short as aliases are added.
      throw new InputError(where, '', `unknown setting ${quote(key)}; ${guess ? `did you mean "${guess}"?` : 'use a short name (interval, rate, netpass, deadline, ...), param.NAME or a field path like traffic.durationMs; `switchover show SCENARIO` lists every key'}`);
    }
  }
  return validateScenario(s, sets.length ? `${scenario.name} with ${sets.map((a) => `--set ${a}`).join(' ')}` : scenario.name);
}

function parsePath(path: string, where: string): Array<string | number> {
  const segments: Array<string | number> = [];
  const re = /([A-Za-z][A-Za-z0-9-]*)|\[(\d+)\]/gy;
  let rebuilt = '';
  for (let m = re.exec(path); m; m = re.exec(path)) {
    segments.push(m[1] ?? Number(m[2]));
    rebuilt = m[1] !== undefined ? join(rebuilt, m[1]) : join(rebuilt, Number(m[2]));
    if (path[re.lastIndex] === '.') re.lastIndex++;
  }
  if (rebuilt !== path) throw new InputError(where, '', `expected a field path like traffic.flows[0].intervalMs, got ${describeGot(path)}`);
  return segments;
}

/** Walks schema and value together down `path`, coerces `raw` for the field there and sets it. */
function setPath(s: Scenario, path: string, raw: string, where: string): void {
  const segments = parsePath(path, where);
  let node: unknown = s;
  let schema: Schema = SCENARIO_SCHEMA;
  let walked = '';
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (schema.type === 'union' && isPlainObject(node)) schema = own(schema.variants, String(node[schema.tag])) ?? schema;
    let next: Schema;
    if (schema.type === 'object' && typeof seg === 'string' && isPlainObject(node)) {
      const field: Field | undefined = own(schema.fields, seg);
      if (!field) throw unknownField(schema, seg, where, walked);
      next = field.schema;
      if (!last && node[seg] === undefined && next.type === 'object') node[seg] = {};
    } else if (schema.type === 'array' && typeof seg === 'number' && Array.isArray(node)) {
      if (seg >= node.length) throw new InputError(where, join(walked, seg), `expected an index below ${node.length}, got ${seg}`);
      next = schema.items;
    } else {
      throw new InputError(where, join(walked, seg), `expected a path into ${describeGot(node)}, got ${describeGot(seg)}`);
    }
    walked = join(walked, seg);
    if (last) {
      (node as Record<string | number, unknown>)[seg] = coerce(next, raw, where, walked);
      // A list or object given as JSON gets the same defaults as in a file before it is checked.
      Object.assign(s, withDefaults(s));
      check(next, segments.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], s), where, walked);
    } else {
      node = (node as Record<string | number, unknown>)[seg];
      schema = next;
    }
  }
}

function parseSwitch(raw: string): boolean | undefined {
  const v = raw.toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(v)) return true;
  if (['off', 'false', 'no', '0'].includes(v)) return false;
  return undefined;
}

/** The suffixes a `--set` number takes, by unit (`5s` is 5000 ms). */
export const MULTIPLIERS: Record<string, Record<string, number>> = {
  ms: { '': 1, ms: 1, s: 1000 },
  MiB: { '': 1, m: 1, mib: 1, g: 1024, gib: 1024 },
  'packets/s': { '': 1, k: 1000 },
  'pages/s': { '': 1, k: 1000 },
  'bytes/s': { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 },
  bytes: { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 },
};

/** A command-line string as the field's type. What cannot be read stays a string, so the check reports it. */
function coerce(schema: Schema, raw: string, where: string, path: string): unknown {
  if (/^[[{]/.test(raw) && (schema.type === 'array' || schema.type === 'object' || schema.type === 'union')) {
    try {
      return JSON.parse(raw);
    } catch (err) {
      throw new InputError(where, path, `expected JSON, got ${describeGot(raw)} (${(err as Error).message})`, { cause: err });
    }
  }
  switch (schema.type) {
    case 'number': {
      const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([A-Za-z]*)$/.exec(raw);
      const factor = m ? own(own(MULTIPLIERS, schema.unit ?? '') ?? { '': 1 }, m[2]!.toLowerCase()) : undefined;
      return m && factor !== undefined ? Number(m[1]) * factor : raw;
    }
    case 'boolean': return parseSwitch(raw) ?? raw;
    case 'array':
      if (schema.items.type === 'enum' || schema.items.type === 'string') return raw === '' ? [] : raw.split(',').map((x) => x.trim());
      throw new InputError(where, path, `expected a JSON list, got ${describeGot(raw)}`);
    case 'object':
    case 'union':
      throw new InputError(where, path, `expected a JSON object or a field below it (${path}.FIELD=VALUE), got ${describeGot(raw)}`);
    default: return raw;
  }
}

// ---- per-backend questions ----------------------------------------------------------------

/**
 * The expectations that apply on `backend`: `expect` with `expectByBackend[backend]` on top.
 * A backend override that states `lost` or `minLost` replaces both (a baseline may expect
 * loss on one backend and none on another). migrationStatus defaults to `completed`.
 */
export function effectiveExpectations(s: Scenario, backend: BackendName): Expectations {
  const base: Expectations = { migrationStatus: 'completed', ...s.expect };
  const over = s.expectByBackend?.[backend];
  if (!over) return base;
  if (over.lost !== undefined || over.minLost !== undefined) {
    delete base.lost;
    delete base.minLost;
  }
  return { ...base, ...over };
}

/** The cont delay for a destination started with -S: migration.contDelayMs or a delay-cont fault. */
export function contDelayMs(s: Scenario): number | undefined {
  return s.migration.contDelayMs ?? s.faults.find((f) => f.kind === 'delay-cont')?.delayMs;
}

/**
 * What a backend must offer to run the scenario: its `requires` plus what its settings imply
 * (every capability it turns on, local migration, vhost). Computed when asked, so it follows
 * `--set` overrides (`--set netpass=off` drops the netpass requirement).
 */
export function requirements(s: Scenario): { capabilities: MigrationCapabilityName[]; local: boolean; vhost: boolean } {
  return {
    capabilities: [...new Set([...(s.requires?.capabilities ?? []), ...s.migration.capabilities])],
    local: Boolean(s.migration.local || s.requires?.local),
    vhost: Boolean(s.topology.vhost || s.requires?.vhost),
  };
}

/**
 * Why `backend` cannot run this scenario (reported as `unsupported`), or undefined when it can:
 * a missing capability or parameter, local migration, or vhost.
 */
export function unsupportedReason(s: Scenario, backend: BackendName, features: BackendFeatures): string | undefined {
  const who = `${backend} ${features.version}`.trim();
  const needs = requirements(s);
  for (const cap of needs.capabilities) {
    if (!features.capabilities.includes(cap)) return `${who} lacks migration capability "${cap}"`;
  }
  for (const param of Object.keys(s.migration.parameters)) {
    if (!features.parameters.includes(param)) return `${who} lacks migration parameter "${param}"`;
  }
  if (needs.local && !features.incomingFds) {
    return `${who} cannot migrate TAP fds locally (no tap incoming-fds / local parameter)`;
  }
  if (needs.vhost && !features.vhost) {
    return backend === 'engine' ? 'the engine does not emulate vhost-net (topology.vhost is on)' : `${who}: vhost-net is not usable here (/dev/vhost-net)`;
  }
  return undefined;
}
