import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CONFIG_DOC_PATH, optionRows, renderConfigurationDoc } from '../../scripts/config-docs.ts';

describe('docs/configuration.md', () => {
  it('is what scripts/config-docs.ts writes from the current schemas (run `npm run docs:config`)', () => {
    expect(readFileSync(CONFIG_DOC_PATH, 'utf8')).toBe(renderConfigurationDoc());
  });
});

describe('optionRows', () => {
  const schema = z.strictObject({
    url: z.string().min(1).describe('where to connect'),
    port: z.number().int().min(1).max(65535).default(80).meta({ description: 'listening port' }),
    mode: z.enum(['a', 'b']).optional().describe('which mode'),
    limits: z
      .strictObject({ lines: z.number().int().positive(), note: z.string().optional() })
      .default({ lines: 10 })
      .describe('caps'),
    nested: z.strictObject({ flag: z.boolean().default(true).describe('a | pipe') }).prefault({}),
    hosts: z.array(z.strictObject({ name: z.string() })).default([]),
  });
  const rows = optionRows(schema);
  const row = (path: string) => rows.find((r) => r.path === path);

  it('walks every path, nested objects and arrays of objects included', () => {
    expect(rows.map((r) => r.path)).toEqual([
      'url', 'port', 'mode', 'limits', 'limits.lines', 'limits.note', 'nested', 'nested.flag', 'hosts', 'hosts[].name',
    ]);
  });

  it('takes descriptions from .describe() and .meta(), whatever wraps them', () => {
    expect(row('url')?.description).toBe('where to connect');
    expect(row('port')?.description).toBe('listening port');
    expect(row('mode')?.description).toBe('which mode');
    expect(row('limits')?.description).toBe('caps');
    expect(row('nested.flag')?.description).toBe('a | pipe');
    expect(row('limits.lines')?.description).toBe('');
  });

  it('shows defaults, inherited ones from the enclosing default, and required options', () => {
    expect(row('url')?.default).toBe('required');
    expect(row('port')?.default).toBe('`80`');
    expect(row('mode')?.default).toBe('—');
    expect(row('limits.lines')?.default).toBe('`10`');
    expect(row('limits.note')?.default).toBe('—');
    expect(row('nested.flag')?.default).toBe('`true`');
    expect(row('hosts[].name')?.default).toBe('required');
  });

  it('describes types with their limits', () => {
    expect(row('url')?.type).toBe('string, non-empty');
    expect(row('port')?.type).toBe('integer, 1 to 65535');
    expect(row('mode')?.type).toBe('one of `"a"`, `"b"`');
    expect(row('hosts')?.type).toBe('array of object');
  });
});
