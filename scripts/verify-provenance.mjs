#!/usr/bin/env node
// Verifies a fleet image's provenance without the fleet: plain Node (18+), no dependencies.
//   node verify-provenance.mjs --key official.pub [--insecure] [--user USER:PASSWORD] HOST/REPO@sha256:HEX
// Reads the attestation the coordinator stored next to the image (the `sha256-<hex>.att` tag, or
// the OCI referrers API), checks the DSSE signature with the public key, that the payload is an
// in-toto statement with a SLSA v1 predicate, and that its subject is this digest; prints the
// statement on success (exit 0), the reason on failure (exit 1). Anonymous or Basic registry access.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const DSSE = 'application/vnd.dsse.envelope.v1+json';
const { values, positionals } = parseArgs({ options: { key: { type: 'string' }, insecure: { type: 'boolean', default: false }, user: { type: 'string' } }, allowPositionals: true });
const ref = positionals[0];
const m = ref === undefined ? null : /^([^/]+)\/(.+)@(sha256:[a-f0-9]{64})$/.exec(ref);
if (values.key === undefined || m === null) {
  console.error('usage: verify-provenance.mjs --key PUBLIC.pem [--insecure] [--user USER:PASSWORD] HOST/REPO@sha256:HEX');
  process.exit(2);
}
const [, host, repo, digest] = m;
const base = `${values.insecure ? 'http' : 'https'}://${host}/v2/${repo}`;
const headers = values.user === undefined ? {} : { authorization: `Basic ${Buffer.from(values.user).toString('base64')}` };
const fail = (why) => {
  console.error(`REFUSED ${ref}: ${why}`);
  process.exit(1);
};

async function get(path, accept) {
  const res = await fetch(`${base}/${path}`, { headers: { ...headers, ...(accept ? { accept } : {}) } });
  if (res.status === 404) return null;
  if (!res.ok) fail(`registry answered ${res.status} for ${path}`);
  return Buffer.from(await res.arrayBuffer());
}
const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let manifest = await get(`manifests/${digest.replace(':', '-')}.att`, 'application/vnd.oci.image.manifest.v1+json');
if (manifest === null) {
  const index = await get(`referrers/${digest}`, 'application/vnd.oci.image.index.v1+json');
  const newest = index === null ? undefined : JSON.parse(index).manifests.filter((d) => d.artifactType === DSSE).at(-1);
  if (newest !== undefined) manifest = await get(`manifests/${newest.digest}`, 'application/vnd.oci.image.manifest.v1+json');
}
if (manifest === null) fail('no attestation in the registry');
const key = createPublicKey(readFileSync(values.key));
for (const layer of JSON.parse(manifest).layers) {
  if (layer.mediaType !== DSSE) continue;
  const blob = await get(`blobs/${layer.digest}`);
  if (blob === null || sha256(blob) !== layer.digest) fail(`attestation blob ${layer.digest} missing or not matching its digest`);
  const env = JSON.parse(blob.toString('utf8'));
  if (env.payloadType !== 'application/vnd.in-toto+json') continue;
  const payload = Buffer.from(env.payload, 'base64');
  const type = Buffer.from(env.payloadType);
  // DSSE pre-authentication encoding: the signature covers the type and the payload together.
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
  if (!env.signatures.some((s) => verify('sha256', pae, key, Buffer.from(s.sig, 'base64')))) continue;
  const statement = JSON.parse(payload.toString('utf8'));
  if (statement._type !== 'https://in-toto.io/Statement/v1' || statement.predicateType !== 'https://slsa.dev/provenance/v1') fail('signed, but not a SLSA v1 in-toto statement');
  if (!statement.subject.some((s) => `sha256:${s.digest.sha256}` === digest)) fail('signed, but about another image');
  console.log(JSON.stringify(statement, null, 2));
  process.exit(0);
}
fail('no signature verifies with this key (tampered, or signed by another key)');
