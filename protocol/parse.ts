import type { z } from 'zod';
import { ErrorCode, FleetError, type Issue } from './errors.ts';

function issuePath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(root)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/**
 * Parses a value with its schema or throws a FleetError whose message names every bad field
 * and why, e.g. `image.tags[0]: must match ...`.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  code: ErrorCode = ErrorCode.E_INVALID_REQUEST,
): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues: Issue[] = result.error.issues.map((i) => ({ path: issuePath(i.path), message: i.message }));
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new FleetError(code, `invalid ${what}: ${summary}`, { issues });
}

/** Decodes NATS/HTTP bytes as JSON, then parses with the schema. */
export function decodeWith<S extends z.ZodType>(
  schema: S,
  bytes: Uint8Array | string,
  what: string,
  code: ErrorCode = ErrorCode.E_INVALID_REQUEST,
): z.infer<S> {
  const text = typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FleetError(code, `invalid ${what}: body is not JSON`, { issues: [{ path: '(root)', message: 'not JSON' }] });
  }
  return parseWith(schema, value, what, code);
}

export function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
