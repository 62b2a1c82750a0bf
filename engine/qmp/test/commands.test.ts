// The typed command table: dispatch by own name only, QEMU's argument errors, and the types that
// tie each handler to lib/qmp-protocol.ts (the @ts-expect-error lines fail the build if they
// stop being errors).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dispatcher, type CommandTable } from '../commands.js';
import { QmpError, type EventSink } from '../server.js';
import { refused } from './refused.js';

const table: CommandTable = {
  'query-status': { args: {}, run: () => ({ running: true, status: 'running' }) },
  migrate: {
    args: { uri: { type: 'str' }, detach: { type: 'bool', optional: true }, resume: { type: 'bool', optional: true } },
    run: ({ uri }) => { if (!uri.startsWith('unix:')) throw new QmpError('GenericError', `not unix: ${uri}`); return {}; },
  },
};
const dispatch = dispatcher(table);

test('commands are found by own name only: prototype names are not commands', () => {
  assert.equal(dispatch('query-status', {}), { running: true, status: 'running' });
  for (const name of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'cont']) {
    assert.equal(refused(() => dispatch(name, {})), { class: 'CommandNotFound', desc: `The command ${name} has not been found` });
  }
});

test('arguments are checked against the spec before the handler sees them', () => {
  assert.equal(dispatch('migrate', { uri: 'unix:/x', detach: true }), {});
  assert.equal(refused(() => dispatch('migrate', {})).desc, "Parameter 'uri' is missing");
  assert.equal(refused(() => dispatch('migrate', { uri: 5 })).desc, "Invalid parameter type for 'uri', expected: string");
  assert.equal(refused(() => dispatch('migrate', { uri: 'unix:/x', blk: true })).desc, "Parameter 'blk' is unexpected");
  assert.equal(refused(() => dispatch('query-status', { x: 1 })).desc, "Parameter 'x' is unexpected");
  assert.equal(refused(() => dispatch('migrate', { uri: 'tcp:h:1' })).desc, 'not unix: tcp:h:1');
});

test('the table and emit are held to the protocol types', () => {
  const specs: CommandTable[] = [
    // @ts-expect-error a member of the protocol's arguments (resume) has no spec
    { migrate: { args: { uri: { type: 'str' }, detach: { type: 'bool', optional: true } }, run: () => ({}) } },
    // @ts-expect-error uri is required in the protocol, so its spec may not say optional
    { migrate: { args: { uri: { type: 'str', optional: true }, detach: { type: 'bool', optional: true }, resume: { type: 'bool', optional: true } }, run: () => ({}) } },
    // @ts-expect-error uri is a string, not an integer
    { migrate: { args: { uri: { type: 'int' }, detach: { type: 'bool', optional: true }, resume: { type: 'bool', optional: true } }, run: () => ({}) } },
    // @ts-expect-error query-status takes no arguments
    { 'query-status': { args: { x: { type: 'str', optional: true } }, run: () => ({ running: true, status: 'running' }) } },
    // @ts-expect-error query-status returns a StatusInfo
    { 'query-status': { args: {}, run: () => ({ running: 'yes' }) } },
  ];
  const events: string[] = [];
  const emit: EventSink = (event, ...data) => { events.push(`${event} ${JSON.stringify(data)}`); };
  emit('STOP');
  emit('MIGRATION', { status: 'active' });
  // @ts-expect-error MIGRATION carries its status
  emit('MIGRATION');
  // @ts-expect-error not a MigrationStatus
  emit('MIGRATION', { status: 'teleporting' });
  // @ts-expect-error not an event of the protocol
  emit('NO_SUCH_EVENT');
  assert.is(specs.length, 5);
  assert.equal(events.slice(0, 2), ['STOP []', 'MIGRATION [{"status":"active"}]']);
});

test.run();
