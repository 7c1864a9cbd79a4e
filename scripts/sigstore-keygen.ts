// Writes the platform's signing key pair for official images: DIR/official.key (encrypted
// private key, 0600), DIR/official.pass (its passphrase, 0600) and DIR/official.pub.
// Usage: node --import tsx scripts/sigstore-keygen.ts DIR   (called by scripts/bootstrap)
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigstoreKeyPair } from '../signing/sigstore-key.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: sigstore-keygen.ts DIR');
// The directory is traversable: workers (the build user) read official.pub; the private key stays 0600.
await mkdir(dir, { recursive: true, mode: 0o755 });
const passphrase = randomBytes(24).toString('base64url');
const pair = generateSigstoreKeyPair(passphrase);
await writeFile(join(dir, 'official.pass'), passphrase, { mode: 0o600 });
await writeFile(join(dir, 'official.key'), pair.privateKeyPem, { mode: 0o600 });
await writeFile(join(dir, 'official.pub'), pair.publicKeyPem, { mode: 0o644 });
