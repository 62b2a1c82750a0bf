// `switchover schema`: the JSON Schema of scenario files on stdout, for editors and linters.
import { type CommandSpec, HELP_OPTION, UsageError, parseCommand } from './args.js';
import { scenarioJsonSchema } from '../scenario/file-format.js';
import { quote } from '../scenario/schema.js';

const OPTIONS = { help: HELP_OPTION } as const;
export const SCHEMA: CommandSpec<typeof OPTIONS> = {
  name: 'schema', args: '',
  summary: 'The JSON Schema (draft 2020-12) of scenario files, derived from the validator\'s own schema.',
  options: OPTIONS,
  notes: [
    'An editor checks a file against it as you type: save it (`switchover schema > scenario.schema.json`) and',
    'name it in the file ("$schema": "./scenario.schema.json"), or map *.json to it in the editor\'s settings.',
    'Rules across fields (netpass needs return-path, ...) are checked by `switchover run` only.',
  ],
};

export function schemaCommand(argv: string[]): number {
  const parsed = parseCommand(SCHEMA, argv);
  if (!parsed) return 0;
  if (parsed.positionals.length) throw new UsageError(`\`switchover schema\` takes no arguments, got ${quote(parsed.positionals[0]!)}`, SCHEMA);
  process.stdout.write(`${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
  return 0;
}
