import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ErrorCode, FleetError, parseWith } from '../protocol/index.ts';

/** The part of a docker `config.json` the platform reads: static credentials per registry host. */
const DockerConfig = z.object({
  auths: z.record(z.string(), z.object({ auth: z.string().optional(), username: z.string().optional(), password: z.string().optional() })).default({}),
});

export interface RegistryCredentials {
  username: string;
  password: string;
}

/**
 * Every registry's credentials in a docker config file (the same file buildah, BuildKit and
 * kaniko are given), read and checked once. A malformed file is an error naming the field.
 */
export async function loadRegistryCredentials(file: string): Promise<ReadonlyMap<string, RegistryCredentials>> {
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new FleetError(ErrorCode.E_INTERNAL, `cannot read registry auth file ${file}: ${String(e)}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FleetError(ErrorCode.E_INTERNAL, `registry auth file ${file} is not JSON`);
  }
  const credentials = new Map<string, RegistryCredentials>();
  for (const [host, entry] of Object.entries(parseWith(DockerConfig, json, `registry auth file ${file}`, ErrorCode.E_INTERNAL).auths)) {
    if (entry.username !== undefined && entry.password !== undefined) {
      credentials.set(host, { username: entry.username, password: entry.password });
      continue;
    }
    const decoded = Buffer.from(entry.auth ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new FleetError(ErrorCode.E_INTERNAL, `registry auth file ${file}: auths.${host}.auth is not base64 of user:password`);
    credentials.set(host, { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
  }
  return credentials;
}
