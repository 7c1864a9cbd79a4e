/**
 * Writes docs/configuration.md from the zod option schemas, so the reference cannot drift from the code.
 *
 *   node --import tsx scripts/config-docs.ts           write docs/configuration.md
 *   node --import tsx scripts/config-docs.ts --check   exit 1 if docs/configuration.md is out of date
 *
 * The schemas are walked generically (through their JSON Schema, input side): every option path gets a
 * row with its type, its default and the text of `.describe()` / `.meta({ description })` if it has one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { CoordinatorOptions } from '../coordinator/index.ts';
import { WorkerOptions } from '../worker/index.ts';

type JsonSchema = z.core.JSONSchema.JSONSchema;
type AnyJsonSchema = z.core.JSONSchema._JSONSchema;

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CONFIG_DOC_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

/** The documented schemas, in order: heading, export name, the module a user imports it from. */
const SCHEMAS: ReadonlyArray<{ title: string; name: string; module: string; schema: z.ZodType }> = [
  { title: 'Coordinator', name: 'CoordinatorOptions', module: 'coordinator/index.ts', schema: CoordinatorOptions },
  { title: 'Worker', name: 'WorkerOptions', module: 'worker/index.ts', schema: WorkerOptions },
];

const DEFAULT_CACHE_DIR = '/var/cache/fleet';

export interface OptionRow {
  /** dotted path; `[]` marks the elements of an array, `*` the values of a map */
  path: string;
  type: string;
  /** Markdown: a code span with the value, `required`, or `—` (optional, no default) */
  default: string;
  description: string;
}

/**
 * Defaults computed at import time from the machine (paths inside this checkout, FLEET_CACHE_DIR)
 * are written the way they are on any machine: relative to the repository, under /var/cache/fleet.
 */
function normalizeValue(value: unknown): unknown {
  if (typeof value === 'string') {
    let s = value;
    if (s.startsWith(REPO_ROOT)) s = s.slice(REPO_ROOT.length);
    const cacheDir = process.env.FLEET_CACHE_DIR;
    if (cacheDir !== undefined && cacheDir !== '' && cacheDir !== DEFAULT_CACHE_DIR && s.startsWith(`${cacheDir}/`)) {
      s = DEFAULT_CACHE_DIR + s.slice(cacheDir.length);
    }
    return s;
  }
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeValue(v)]));
  }
  return value;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A Markdown table cell: one line, pipes escaped (GitHub tables honour `\|` inside code spans too). */
const cell = (text: string): string => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

/** A code span that survives backticks in its content. */
function code(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  return longest > 0 ? `${fence} ${text} ${fence}` : `${fence}${text}${fence}`;
}

class Walker {
  readonly rows: OptionRow[] = [];
  constructor(private readonly root: JsonSchema) {}

  /** Follows `$ref`s into `$defs` (schemas registered with an id are emitted there). */
  resolve(node: AnyJsonSchema): JsonSchema {
    if (typeof node === 'boolean') return node ? {} : { not: {} };
    let current: JsonSchema = node;
    for (let hops = 0; typeof current.$ref === 'string' && hops < 32; hops++) {
      const ref = current.$ref;
      const name = ref.startsWith('#/$defs/') ? decodeURIComponent(ref.slice('#/$defs/'.length)) : undefined;
      const target = name === undefined ? undefined : this.root.$defs?.[name];
      if (target === undefined) break;
      // sibling keywords (default, description) on the referring node win over the target's
      const siblings: JsonSchema = { ...current };
      delete siblings.$ref;
      current = { ...target, ...siblings };
    }
    return current;
  }

  /** Branches of a union, without `null` (reported as "or null"). */
  private alternatives(node: JsonSchema): { branches: JsonSchema[]; nullable: boolean } | undefined {
    const list = node.anyOf ?? node.oneOf;
    if (list === undefined) return undefined;
    const resolved = list.map((b) => this.resolve(b));
    const branches = resolved.filter((b) => b.type !== 'null');
    return { branches, nullable: branches.length < resolved.length };
  }

  typeOf(input: AnyJsonSchema): string {
    const node = this.resolve(input);
    const union = this.alternatives(node);
    if (union !== undefined) {
      const text = union.branches.map((b) => this.typeOf(b)).join(' or ');
      return union.nullable ? `${text} or null` : text;
    }
    if (node.allOf !== undefined) return node.allOf.map((b) => this.typeOf(b)).join(' and ');
    if (node.const !== undefined) return code(JSON.stringify(node.const));
    if (Array.isArray(node.enum)) return `one of ${node.enum.map((v) => code(JSON.stringify(v))).join(', ')}`;
    const types = Array.isArray(node.type) ? (node.type as string[]) : node.type === undefined ? [] : [node.type];
    if (types.length === 0) return 'any';
    return types.map((t) => this.typeName(t, node)).join(' or ');
  }

  private typeName(type: string, node: JsonSchema): string {
    const limits: string[] = [];
    switch (type) {
      case 'string': {
        if (typeof node.format === 'string') limits.push(node.format);
        if (node.minLength === 1) limits.push('non-empty');
        else if (node.minLength !== undefined && node.minLength > 1) limits.push(`at least ${node.minLength} chars`);
        if (node.maxLength !== undefined) limits.push(`at most ${node.maxLength} chars`);
        if (node.pattern !== undefined) limits.push(`matching ${code(node.pattern)}`);
        break;
      }
      case 'number':
      case 'integer': {
        const min = node.minimum !== undefined && node.minimum > Number.MIN_SAFE_INTEGER ? node.minimum : undefined;
        const max = node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER ? node.maximum : undefined;
        if (min !== undefined && max !== undefined) limits.push(`${min} to ${max}`);
        else if (min !== undefined) limits.push(`≥ ${min}`);
        else if (max !== undefined) limits.push(`≤ ${max}`);
        if (typeof node.exclusiveMinimum === 'number') limits.push(`> ${node.exclusiveMinimum}`);
        if (typeof node.exclusiveMaximum === 'number') limits.push(`< ${node.exclusiveMaximum}`);
        if (node.multipleOf !== undefined) limits.push(`multiple of ${node.multipleOf}`);
        break;
      }
      case 'array': {
        const items = node.items === undefined || Array.isArray(node.items) ? 'any' : this.typeOf(node.items);
        if (node.minItems !== undefined && node.minItems > 0) limits.push(`at least ${node.minItems}`);
        if (node.maxItems !== undefined) limits.push(`at most ${node.maxItems}`);
        return withLimits(`array of ${items}`, limits);
      }
      case 'object': {
        const values = node.additionalProperties;
        if (node.properties === undefined && values !== undefined && values !== false) {
          return `map of string to ${values === true ? 'any' : this.typeOf(values)}`;
        }
        return 'object';
      }
      default:
        break;
    }
    return withLimits(type, limits);
  }

  /**
   * Adds a row for `path` and rows for whatever sits inside it. `inherited` is the value the enclosing
   * object's default gives this option when the enclosing object is left out.
   */
  walk(input: AnyJsonSchema, path: string, required: boolean, inherited: unknown): void {
    const node = this.resolve(input);
    const own = node.default === undefined ? undefined : normalizeValue(node.default);
    const effective = node.default === undefined ? inherited : own;
    const properties = this.objectProperties(node);

    let defaultText: string;
    if (own !== undefined && isObject(own) && properties !== undefined && Object.keys(own).length > 0
      && Object.keys(own).every((k) => k in properties)) {
      defaultText = 'see below';
    } else if (effective !== undefined) {
      defaultText = code(JSON.stringify(effective));
    } else {
      defaultText = required ? 'required' : '—';
    }
    if (path !== '') {
      this.rows.push({
        path,
        type: this.typeOf(node),
        default: defaultText,
        description: typeof node.description === 'string' ? node.description.trim() : '',
      });
    }

    this.walkInside(node, path, effective);
  }

  /** Rows for the options inside an object, an array of objects (`path[]`) or a map of objects (`path.*`). */
  private walkInside(node: JsonSchema, path: string, effective: unknown): void {
    const properties = this.objectProperties(node);
    if (properties !== undefined) {
      const requiredKeys = new Set(this.objectRequired(node));
      for (const [key, child] of Object.entries(properties)) {
        const childInherited = isObject(effective) ? effective[key] : undefined;
        this.walk(child, path === '' ? key : `${path}.${key}`, requiredKeys.has(key), childInherited);
      }
      return;
    }
    if (node.type === 'array' && node.items !== undefined && !Array.isArray(node.items)) {
      this.walkInside(this.resolve(node.items), `${path}[]`, undefined);
      return;
    }
    const values = node.additionalProperties;
    if (node.type === 'object' && values !== undefined && typeof values !== 'boolean') {
      this.walkInside(this.resolve(values), `${path}.*`, undefined);
    }
  }

  /** Properties of an object schema, merging `allOf` parts (intersections). */
  private objectProperties(node: JsonSchema): Record<string, AnyJsonSchema> | undefined {
    if (node.properties !== undefined) return node.properties;
    if (node.allOf === undefined) return undefined;
    const parts = node.allOf.map((p) => this.objectProperties(this.resolve(p)));
    if (parts.every((p) => p === undefined)) return undefined;
    return Object.assign({}, ...parts.filter((p) => p !== undefined)) as Record<string, AnyJsonSchema>;
  }

  private objectRequired(node: JsonSchema): string[] {
    return [...(node.required ?? []), ...(node.allOf ?? []).flatMap((p) => this.objectRequired(this.resolve(p)))];
  }
}

const withLimits = (name: string, limits: string[]): string => (limits.length === 0 ? name : `${name}, ${limits.join(', ')}`);

/** One row per option of `schema` (input side: what a configuration file may contain). */
export function optionRows(schema: z.ZodType): OptionRow[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  const walker = new Walker(json);
  walker.walk(json, '', true, undefined);
  return walker.rows;
}

export function renderTable(rows: readonly OptionRow[]): string {
  const lines = ['| option | type | default | description |', '| --- | --- | --- | --- |'];
  for (const row of rows) {
    lines.push(`| ${[code(row.path), row.type, row.default, row.description].map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The whole of docs/configuration.md. */
export function renderConfigurationDoc(): string {
  const parts = [
    '# Configuration',
    '',
    '<!-- Generated by scripts/config-docs.ts from the zod option schemas. Do not edit by hand:',
    '     change the schema, then run `npm run docs:config`. test/scripts/config-docs.test.ts fails when this file is stale. -->',
    '',
    'Every option of the coordinator and the worker, read from the schemas that validate them.',
    '*default*: the value used when the option is left out; `required`: must be',
    'given (when the object it sits in is given); `—`: optional, no default. In a path, `[]` means each',
    'element of an array and `*` each value of a map. Paths inside the repository are shown relative to',
    'it; `/var/cache/fleet` is `$FLEET_CACHE_DIR` when that is set.',
  ];
  for (const { title, name, module, schema } of SCHEMAS) {
    parts.push('', `## ${title}`, '', `\`${name}\`, exported by [\`${module}\`](../${module}).`, '', renderTable(optionRows(schema)));
  }
  return `${parts.join('\n')}\n`;
}

function main(argv: readonly string[]): number {
  const expected = renderConfigurationDoc();
  if (argv.includes('--check')) {
    let actual: string | undefined;
    try {
      actual = readFileSync(CONFIG_DOC_PATH, 'utf8');
    } catch {
      actual = undefined;
    }
    if (actual === expected) return 0;
    process.stderr.write('docs/configuration.md is out of date: run `npm run docs:config`\n');
    return 1;
  }
  writeFileSync(CONFIG_DOC_PATH, expected);
  process.stdout.write('wrote docs/configuration.md\n');
  return 0;
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(invokedPath).href) {
  process.exitCode = main(process.argv.slice(2));
}
