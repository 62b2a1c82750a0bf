// The CI templates in docs/ci/ (issue 16) are tested, so a template can never name an option
// that does not exist: both YAML files are parsed, every `switchover` command line in their
// scripts is expanded for each machine of the matrix (GitHub `matrix`, GitLab `parallel:`) and
// run with --help, which the CLI refuses for an unknown option or a bad choice. The shards of
// a matrix must cover 1..N, and what a run writes must be in what the job uploads. Negative
// cases prove each check fails on a template that breaks it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseShard } from '../../scenario/shard.js';
import { runCli } from './run-cli.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const GITHUB = 'docs/ci/github-actions.yml';
const GITLAB = 'docs/ci/gitlab-ci.yml';
const read = (file: string): string => readFileSync(`${root}${file}`, 'utf8');

type Yaml = Record<string, unknown>;
const isMap = (v: unknown): v is Yaml => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One job on one machine of its matrix: its shell scripts with the matrix expanded, and what it uploads. */
interface Machine { job: string; label: string; scripts: string[]; uploads: string[] }

/** Shell words of one command line, quotes removed; `&&`, `||`, `|` and `;` are words of their own. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unclosed ${c} in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else if ('&|;'.includes(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      const op = line[i + 1] === c && c !== ';' ? c + c : c;
      words.push(op);
      i += op.length - 1;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** The arguments after `switchover` (npx switchover, bin/switchover.js) of each command in a script. */
function switchoverCommands(script: string): string[][] {
  const out: string[][] = [];
  for (const line of script.replace(/\\\n/g, ' ').split('\n')) {
    let command: string[] = [];
    for (const w of [...shellWords(line), ';']) {
      if (!['&&', '||', '|', ';'].includes(w)) { command.push(w); continue; }
      const at = command.findIndex((x) => /(^|\/)switchover(\.js)?$/.test(x));
      if (at >= 0) out.push(command.slice(at + 1));
      command = [];
    }
  }
  return out;
}

/** Every combination of a GitHub matrix of plain lists. */
function combinations(matrix: Yaml): Array<Record<string, string>> {
  let all: Array<Record<string, string>> = [{}];
  for (const [key, values] of Object.entries(matrix)) {
    if (!Array.isArray(values)) throw new Error(`matrix.${key}: only plain lists are expanded here, got ${JSON.stringify(values)}`);
    all = all.flatMap((c) => values.map((v) => ({ ...c, [key]: String(v) })));
  }
  return all;
}

function githubMachines(doc: Yaml): Machine[] {
  const jobs = doc.jobs;
  if (!isMap(jobs)) throw new Error('no jobs');
  return Object.entries(jobs).flatMap(([job, spec]) => {
    if (!isMap(spec) || !Array.isArray(spec.steps)) throw new Error(`jobs.${job}: no steps`);
    const strategy = isMap(spec.strategy) ? spec.strategy : {};
    return combinations(isMap(strategy.matrix) ? strategy.matrix : {}).map((vars) => {
      const expand = (text: string): string => text.replace(/\$\{\{\s*matrix\.(\w+)\s*\}\}/g, (m, k: string) => {
        if (vars[k] === undefined) throw new Error(`jobs.${job}: ${m} is not in the matrix`);
        return vars[k];
      });
      const steps = (spec.steps as unknown[]).filter(isMap);
      const uploads = steps.filter((s) => String(s.uses ?? '').startsWith('actions/upload-artifact'))
        .flatMap((s) => String(isMap(s.with) ? s.with.path ?? '' : '').split('\n').map((p) => expand(p.trim())).filter(Boolean));
      const scripts = steps.flatMap((s) => (typeof s.run === 'string' ? [expand(s.run)] : []));
      return { job, label: `${job} ${JSON.stringify(vars)}`, scripts, uploads };
    });
  });
}

function gitlabMachines(doc: Yaml): Machine[] {
  return Object.entries(doc).filter(([name, spec]) => !name.startsWith('.') && isMap(spec) && 'script' in spec).flatMap(([job, spec]) => {
    const s = spec as Yaml;
    const total = typeof s.parallel === 'number' ? s.parallel : 1;
    const artifacts = isMap(s.artifacts) ? s.artifacts : {};
    const reports = isMap(artifacts.reports) ? Object.values(artifacts.reports).flat() : [];
    const uploads = [...(Array.isArray(artifacts.paths) ? artifacts.paths : []), ...reports].map(String);
    return Array.from({ length: total }, (_, i) => {
      const vars: Record<string, string> = { CI_NODE_INDEX: String(i + 1), CI_NODE_TOTAL: String(total) };
      const expand = (text: string): string => text.replace(/\$\{?(CI_NODE_INDEX|CI_NODE_TOTAL)\}?/g, (_m, k: string) => vars[k]!);
      const scripts = ['before_script', 'script', 'after_script']
        .flatMap((key) => (Array.isArray(s[key]) ? s[key] : typeof s[key] === 'string' ? [s[key]] : []))
        .map((line) => expand(String(line)));
      return { job, label: `${job} ${i + 1}/${total}`, scripts, uploads: uploads.map(expand) };
    });
  });
}

/** Whether an upload path (a file, a folder ending in "/", a glob with "*") takes `file`. */
function uploaded(uploads: readonly string[], file: string): boolean {
  const norm = (p: string): string => p.replace(/^\.\//, '');
  return uploads.some((u) => {
    const up = norm(u), f = norm(file);
    if (up.includes('*')) return new RegExp(`^${up.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`).test(f);
    return up === f || up === `${f}/` || (up.endsWith('/') && f.startsWith(up));
  });
}

/** What is wrong with a template: one line per problem, naming the machine and the command. */
async function templateProblems(kind: 'github' | 'gitlab', text: string): Promise<string[]> {
  const doc = parse(text) as Yaml;
  const machines = kind === 'github' ? githubMachines(doc) : gitlabMachines(doc);
  const problems: string[] = [];
  const shards = new Map<string, Array<{ index: number; total: number }>>();
  const checked = new Map<string, Promise<string | undefined>>();
  let commands = 0;
  for (const m of machines) {
    for (const argv of m.scripts.flatMap(switchoverCommands)) {
      commands++;
      const shown = `switchover ${argv.join(' ')}`;
      const left = argv.find((a) => a.includes('$'));
      if (left !== undefined) { problems.push(`${m.label}: ${shown}: ${left} is not expanded here`); continue; }
      const key = JSON.stringify(argv);
      if (!checked.has(key)) {
        checked.set(key, runCli([...argv, '--help'], { timeoutMs: 30_000 }).then((r) => (r.code === 0 && r.stdout.startsWith(`usage: switchover ${argv[0]}`)
          ? undefined : `exit ${r.code}: ${r.stderr.split('\n')[0]}`)));
      }
      const refused = await checked.get(key)!;
      if (refused) problems.push(`${m.label}: ${shown}: ${refused}`);
      const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
      const shard = opt('--shard');
      if (shard !== undefined) {
        try {
          shards.set(m.job, [...(shards.get(m.job) ?? []), parseShard(shard)]);
        } catch (e) {
          problems.push(`${m.label}: ${shown}: ${(e as Error).message}`);
        }
      }
      for (const option of ['--junit', '--report', '--trace']) {
        const file = opt(option);
        if (file !== undefined && !uploaded(m.uploads, file)) problems.push(`${m.label}: ${option} ${file} is not uploaded (uploads: ${m.uploads.join(', ') || 'none'})`);
      }
    }
  }
  if (!commands) problems.push('no switchover command line found');
  for (const [job, list] of shards) {
    const total = list[0]!.total;
    const indexes = list.map((s) => s.index).sort((a, b) => a - b);
    const whole = Array.from({ length: total }, (_, i) => i + 1);
    if (list.some((s) => s.total !== total) || JSON.stringify(indexes) !== JSON.stringify(whole)) {
      problems.push(`${job}: the machines run shards ${list.map((s) => `${s.index}/${s.total}`).join(', ')}, not each of 1..${total} once`);
    }
  }
  return problems;
}

test('shellWords and switchoverCommands read a step as a shell would', () => {
  assert.equal(shellWords(`sudo -E env "PATH=$PATH" npx switchover run --set 'a=b c' && echo done # note`),
    ['sudo', '-E', 'env', 'PATH=$PATH', 'npx', 'switchover', 'run', '--set', 'a=b c', '&&', 'echo', 'done']);
  assert.equal(switchoverCommands('mkdir -p out; node bin/switchover.js list --verbose | head\nnpx switchover run \\\n  --shard 1/2 || true'),
    [['list', '--verbose'], ['run', '--shard', '1/2']]);
});

test(`${GITHUB}: every switchover command line is accepted, shards cover 1..N, outputs are uploaded`, async () => {
  const text = read(GITHUB);
  assert.equal(await templateProblems('github', text), []);
  const machines = githubMachines(parse(text) as Yaml);
  assert.is(machines.length, 4, 'a matrix of 4 shards');
  const commands = machines.flatMap((m) => m.scripts.flatMap(switchoverCommands));
  for (const option of ['--shard', '--junit', '--report', '--trace', '--trace-on']) {
    assert.ok(commands.every((argv) => argv.includes(option)), `every run names ${option}`);
  }
  assert.match(text, /if: failure\(\)\n\s+uses: actions\/upload-artifact/, 'uploads on failure');
});

test(`${GITLAB}: every switchover command line is accepted, parallel: covers 1..N, outputs are kept`, async () => {
  const text = read(GITLAB);
  assert.equal(await templateProblems('gitlab', text), []);
  const machines = gitlabMachines(parse(text) as Yaml);
  assert.is(machines.length, 4, 'parallel: 4');
  assert.ok(machines.every((m) => m.uploads.includes('out/junit-*.xml')), 'JUnit as a report');
});

test('negative: a template naming an option that does not exist, or a bad choice, fails the check', async () => {
  const github = read(GITHUB);
  assert.ok(github.includes('--junit out/'), 'the template has --junit to break');
  const typo = await templateProblems('github', github.replace('--junit out/', '--junit-xml out/'));
  assert.is(typo.length, 4, `one problem per machine: ${typo.join('\n')}`);
  assert.ok(typo.every((p) => /has no option --junit-xml/.test(p)), typo.join('\n'));
  const choice = await templateProblems('gitlab', read(GITLAB).replace('--trace-on failure', '--trace-on failures'));
  assert.ok(choice.length && choice.every((p) => /--trace-on "failures": expected failure or always/.test(p)), choice.join('\n'));
});

test('negative: a matrix that misses a shard, an output that is not uploaded, an unexpanded variable', async () => {
  const github = read(GITHUB);
  const missing = await templateProblems('github', github.replace('shard: [1, 2, 3, 4]', 'shard: [1, 2, 3]'));
  assert.ok(missing.some((p) => /shards 1\/4, 2\/4, 3\/4, not each of 1\.\.4 once/.test(p)), missing.join('\n'));
  const notUploaded = await templateProblems('github', github.replace(/^ {12}out\/traces\/\n/m, ''));
  assert.ok(notUploaded.some((p) => /--trace out\/traces is not uploaded/.test(p)), notUploaded.join('\n'));
  const unexpanded = await templateProblems('gitlab', read(GITLAB).replace('${CI_NODE_TOTAL}', '${NODES}'));
  assert.ok(unexpanded.some((p) => /\$\{NODES\} is not expanded here/.test(p)), unexpanded.join('\n'));
});

test('harness/SHARDING.md points to the templates instead of keeping copies; its own command lines parse', async () => {
  const doc = read('harness/SHARDING.md');
  assert.ok(doc.includes(GITHUB) && doc.includes(GITLAB), 'links both templates');
  assert.not.match(doc, /```yaml/, 'no YAML copies left to drift');
  const commands = [...doc.matchAll(/```sh\n([^]*?)```/g)].flatMap((m) => switchoverCommands(m[1]!));
  assert.ok(commands.length >= 3, `${commands.length} command lines`);
  for (const argv of commands) {
    const r = await runCli([...argv, '--help'], { timeoutMs: 30_000 });
    assert.is(r.code, 0, `switchover ${argv.join(' ')}: ${r.stderr}`);
  }
});

test.run();
