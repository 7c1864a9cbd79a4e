import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../adapters/registry-client.ts';
import { ErrorCode, FleetError, type AllowedBase } from '../../protocol/index.ts';
import { baseUses, checkBasePolicy, isAllowed, parseImageRef, type BaseUse } from '../../worker/base-policy.ts';
import { checkBases, probeVerdict } from '../../worker/base-resolver.ts';

describe('image references as the builders resolve them', () => {
  it.each([
    ['alpine', { registry: 'docker.io', repository: 'library/alpine', reference: 'latest' }],
    ['alpine:3.20', { registry: 'docker.io', repository: 'library/alpine', reference: '3.20' }],
    ['phusion/baseimage:0.11', { registry: 'docker.io', repository: 'phusion/baseimage', reference: '0.11' }],
    ['index.docker.io/library/debian:12', { registry: 'docker.io', repository: 'library/debian', reference: '12' }],
    ['127.0.0.1:5000/official/base:1', { registry: '127.0.0.1:5000', repository: 'official/base', reference: '1' }],
    ['localhost/x/y', { registry: 'localhost', repository: 'x/y', reference: 'latest' }],
    [`ghcr.io/o/r@sha256:${'a'.repeat(64)}`, { registry: 'ghcr.io', repository: 'o/r', reference: `sha256:${'a'.repeat(64)}` }],
    ['nonexistent.invalid/x:1', { registry: 'nonexistent.invalid', repository: 'x', reference: '1' }],
  ])('%s', (image, ref) => {
    expect(parseImageRef(image)).toEqual(ref);
  });

  it.each(['', '/official/base:1', 'Upper/Case:1', 'a b'])('refuses "%s"', (image) => {
    expect(parseImageRef(image)).toBeNull();
  });
});

describe('the images a Dockerfile pulls', () => {
  it('FROMs after build args, and COPY --from naming no stage (a stage name or index is none)', () => {
    const dockerfile = ['ARG REG', 'FROM ${REG}/official/base:1 AS Build', 'FROM scratch', 'COPY --from=build /a /a', 'COPY --from=0 /b /b', 'COPY --from=nosuchstage /c /c', 'COPY --from=alpine:3 /d /d'].join('\n');
    expect(baseUses(dockerfile, { REG: 'r:5000' })).toEqual([
      { image: 'r:5000/official/base:1', line: 2, text: 'FROM ${REG}/official/base:1 AS Build' },
      { image: 'nosuchstage', line: 6, text: 'COPY --from=nosuchstage /c /c' },
      { image: 'alpine:3', line: 7, text: 'COPY --from=alpine:3 /d /d' },
    ]);
  });

  it('RUN --mount=…,from= pulls too; a $ in --from is kept for the policy to refuse', () => {
    const dockerfile = ['FROM r/a:1 AS tools', 'RUN --mount=type=bind,from=tools,target=/t --mount=type=cache,from=ghcr.io/x/y:1,target=/c true', 'ARG IMG', 'COPY --from=${IMG} /x /x'].join('\n');
    expect(baseUses(dockerfile, {}).map((u) => u.image)).toEqual(['r/a:1', 'ghcr.io/x/y:1', '${IMG}']);
    expect(() => checkBasePolicy(baseUses(dockerfile, {}).slice(2), [{ registry: 'r' }])).toThrowError(expect.objectContaining({ code: ErrorCode.E_DOCKERFILE_INVALID, message: expect.stringContaining('variable expansion is not supported for --from') as unknown }));
  });
});

describe('allowed bases', () => {
  const allowed: AllowedBase[] = [
    { registry: 'r:5000', repositories: ['official/*', 'app/payments/*', 'bases/one'] },
    { registry: 'docker.io', repositories: ['library/*'] },
  ];
  const use = (image: string, line = 3): BaseUse => ({ image, line, text: `FROM ${image}` });

  it('allows by registry and repository pattern (a prefix ending in /*, or exactly one repository)', () => {
    const ok = (image: string): boolean => isAllowed(parseImageRef(image) ?? { registry: '', repository: '', reference: '' }, allowed);
    expect(ok('r:5000/official/base:1')).toBe(true);
    expect(ok('r:5000/app/payments/api:2')).toBe(true);
    expect(ok('r:5000/bases/one:1')).toBe(true);
    expect(ok('r:5000/bases/one-more:1')).toBe(false);
    expect(ok('r:5000/app/other/api:1')).toBe(false);
    expect(ok('alpine:3')).toBe(true);
    expect(ok('registry-1.docker.io/library/debian:12')).toBe(true);
    expect(ok('phusion/baseimage:0.11')).toBe(false);
    expect(ok('R:5000/official/base:1')).toBe(true);
    expect(isAllowed({ registry: 'ghcr.io', repository: 'any/thing', reference: '1' }, [{ registry: 'ghcr.io' }])).toBe(true);
  });

  it('refuses the first base not allowed with E_BASE_NOT_ALLOWED naming its line and what is allowed', () => {
    expect(() => checkBasePolicy([use('r:5000/official/base:1', 2), use('phusion/baseimage:0.11', 5)], allowed)).toThrowError(
      expect.objectContaining({
        code: ErrorCode.E_BASE_NOT_ALLOWED,
        message: 'base not allowed at Dockerfile line 5 (FROM phusion/baseimage:0.11): docker.io/phusion/baseimage:0.11 is not among the bases this build may use (r:5000/official/*, r:5000/app/payments/*, r:5000/bases/one, docker.io/library/*)',
      }),
    );
  });

  it('says when a COPY --from names no stage, and when a build arg left a FROM empty', () => {
    expect(() => checkBasePolicy([{ image: 'nosuchstage', line: 3, text: 'COPY --from=nosuchstage /x /x' }], [{ registry: 'r:5000' }])).toThrowError(/--from=nosuchstage names no stage of this Dockerfile, so it is the image docker.io\/library\/nosuchstage:latest/);
    expect(() => checkBasePolicy([use('', 2)], allowed)).toThrowError(expect.objectContaining({ code: ErrorCode.E_DOCKERFILE_INVALID, message: expect.stringContaining('a build arg it needs is not set') as unknown }));
  });
});

describe('what a probe of a base means', () => {
  const use: BaseUse = { image: 'r/x:1', line: 1, text: 'FROM r/x:1' };
  const ref = { registry: 'r', repository: 'x', reference: '1' };
  const verdict = (outcome: Parameters<typeof probeVerdict>[2]) => probeVerdict(use, ref, outcome)?.code ?? null;

  it('is final for what another attempt would not change, retryable for what an outage explains', () => {
    expect(verdict({ status: 200 })).toBeNull();
    expect(verdict({ status: 404 })).toBe(ErrorCode.E_BASE_NOT_FOUND);
    expect(verdict({ status: 401 })).toBe(ErrorCode.E_BASE_UNAUTHORIZED);
    expect(verdict({ status: 403 })).toBe(ErrorCode.E_BASE_UNAUTHORIZED);
    expect(verdict({ status: 429 })).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    expect(verdict({ status: 503 })).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    expect(verdict({ error: new FleetError(ErrorCode.E_REGISTRY_AUTH, 'refused') })).toBe(ErrorCode.E_BASE_UNAUTHORIZED);
    const dns = (code: string): Error => new FleetError(ErrorCode.E_REGISTRY_UNAVAILABLE, 'unreachable', undefined, { cause: new TypeError('fetch failed', { cause: Object.assign(new Error(`getaddrinfo ${code} r`), { code }) }) });
    expect(verdict({ error: dns('ENOTFOUND') })).toBe(ErrorCode.E_BASE_NOT_FOUND);
    expect(verdict({ error: dns('EAI_AGAIN') })).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    expect(verdict({ error: dns('ECONNREFUSED') })).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    expect(probeVerdict(use, ref, { status: 404 })?.message).toBe('base image not found at Dockerfile line 1 (FROM r/x:1): r/x:1: r has no such manifest (404)');
  });
});

describe('the check over real sockets', () => {
  // A registry answering each repository with the status its name asks for (the fleet's own
  // registry answers 404 and 401: test/integration/base-policy.test.ts).
  let server: Server;
  let host: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const status = Number(/^\/v2\/s(\d{3})\//.exec(req.url ?? '')?.[1] ?? 404);
      res.writeHead(status, status === 200 ? { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } : {}).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const check = (from: string, allowed: AllowedBase[] = [{ registry: host }, { registry: 'nonexistent.invalid' }, { registry: '127.0.0.1:1' }]) =>
    checkBases(`FROM ${from}\nRUN true\n`, {}, allowed, (h) => new RegistryClient({ host: h, insecure: h === host }), AbortSignal.timeout(20_000)).then(
      () => null,
      (e: unknown) => (e instanceof FleetError ? e.code : String(e)),
    );

  it('present, missing, throttled, failing, unresolvable, down', async () => {
    expect(await check(`${host}/s200/x:1`)).toBeNull();
    expect(await check(`${host}/s404/x:1`)).toBe(ErrorCode.E_BASE_NOT_FOUND);
    expect(await check(`${host}/s403/x:1`)).toBe(ErrorCode.E_BASE_UNAUTHORIZED);
    expect(await check(`${host}/s429/x:1`)).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    expect(await check(`${host}/s503/x:1`)).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
    // RFC 6761: .invalid never resolves
    expect(await check('nonexistent.invalid/x:1')).toBe(ErrorCode.E_BASE_NOT_FOUND);
    expect(await check('127.0.0.1:1/x:1')).toBe(ErrorCode.E_REGISTRY_UNAVAILABLE);
  });

  it('refuses by policy before asking any registry', async () => {
    expect(await check('nonexistent.invalid/x:1', [{ registry: host }])).toBe(ErrorCode.E_BASE_NOT_ALLOWED);
  });
});
