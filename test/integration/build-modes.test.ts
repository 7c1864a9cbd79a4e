import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { BuildRequestInput, BuildView } from '../../protocol/index.ts';
import { fetchManifestDigest } from '../../adapters/registry-client.ts';
import { RegistryClient } from '../../adapters/registry-client.ts';
import { readImage } from '../../coordinator/gates/image-reader.ts';
import { archivedLog, fixture, startTestFleet } from '../helpers/fleet.ts';
import { runImage } from '../helpers/podman.ts';
import { storedEvents } from '../../client/index.ts';

/** The three ways an app gets its image, built for real through the fleet and run with podman. */
describe('build modes', () => {
  let fleet: LocalFleet;
  let registry: RegistryClient;
  beforeAll(async () => {
    fleet = await startTestFleet({ workers: 2 });
    registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  async function build(app: string, request: Omit<BuildRequestInput, 'context'>): Promise<BuildView> {
    const { digest } = await fleet.client.uploadContext(fixture(app), request.kind === 'standard' ? null : 'Dockerfile');
    await fleet.client.submit({ ...request, context: { digest } });
    return fleet.client.follow(request.id, {});
  }
  const ref = (repository: string, tag: string): string => `${fleet.registry.host}/${repository}:${tag}`;

  it('standard build runs build-env.sh before compile and image-env.sh into the image, as a non-root user', async () => {
    const done = await build('java-hooks', {
      id: 'std-hooks',
      kind: 'standard',
      standard: { runtime: 'java17', environment: 'prod' },
      image: { repository: 'app/java-hooks', tags: ['1'] },
    });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    const out = await runImage(ref('app/java-hooks', '1'), fleet.registry.host);
    expect(out.stdout).toContain('build-env: generated before compile');
    expect(out.stdout).toContain('image-env: installed at image build');
    const image = await readImage(registry, 'app/java-hooks', '1');
    expect(image.config.config.User).toBe('app');
    expect(await runImage(ref('app/java-hooks', '1'), fleet.registry.host, { shell: 'id -u' })).toMatchObject({ stdout: '10001' });
    // The log shows the hooks ran in that order: build-env, compile, image-env.
    const log = await archivedLog(fleet, 'std-hooks');
    expect(log.indexOf('paas: running .paas/build-env.sh')).toBeGreaterThan(-1);
    expect(log.indexOf('javac')).toBeGreaterThan(log.indexOf('paas: running .paas/build-env.sh'));
    expect(log.indexOf('paas: running .paas/image-env.sh')).toBeGreaterThan(log.indexOf('javac'));
  });

  it('standard build with the wget option has a working wget in the image', async () => {
    const done = await build('java-plain', {
      id: 'std-wget',
      kind: 'standard',
      standard: { runtime: 'java17', environment: 'prod', options: ['wget'] },
      image: { repository: 'app/java-wget', tags: ['1'] },
    });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    const out = await runImage(ref('app/java-wget', '1'), fleet.registry.host, { shell: 'wget --version | head -1; java -jar /app/app.jar' });
    expect(out.stdout).toMatch(/GNU Wget/);
    expect(out.stdout).toContain('hello from java-plain: 1683');
  });

  it('JaCoCo enabled for test is in the test image and produces coverage; the prod image from the same commit has no trace of it', async () => {
    const services = { jacoco: ['test'] };
    const [test, prod] = await Promise.all([
      build('java-plain', { id: 'cov-test', kind: 'standard', standard: { runtime: 'java17', environment: 'test', services }, image: { repository: 'app/cov', tags: ['test'] } }),
      build('java-plain', { id: 'cov-prod', kind: 'standard', standard: { runtime: 'java17', environment: 'prod', services }, image: { repository: 'app/cov', tags: ['prod'] } }),
    ]);
    expect(test.state).toMatchObject({ phase: 'pushed' });
    expect(prod.state).toMatchObject({ phase: 'pushed' });
    const ran = await runImage(ref('app/cov', 'test'), fleet.registry.host, {
      shell: 'java -jar /app/app.jar && test -s /var/lib/jacoco/jacoco.exec && echo "coverage bytes: $(wc -c < /var/lib/jacoco/jacoco.exec)"',
    });
    expect(ran.stdout).toContain('hello from java-plain');
    expect(ran.stdout).toMatch(/coverage bytes: [1-9]\d*/);
    const testImage = await readImage(registry, 'app/cov', 'test');
    expect(testImage.config.config.Env?.some((e) => e.startsWith('JAVA_TOOL_OPTIONS=-javaagent:/opt/jacoco/jacocoagent.jar'))).toBe(true);

    const prodImage = await readImage(registry, 'app/cov', 'prod');
    expect(JSON.stringify(prodImage.config).toLowerCase()).not.toContain('jacoco');
    const inside = await runImage(ref('app/cov', 'prod'), fleet.registry.host, { shell: 'ls /opt; env; java -jar /app/app.jar' });
    expect(inside.stdout.toLowerCase()).not.toContain('jacoco');
    expect(inside.stdout).toContain('hello from java-plain');
  });

  it('a custom base derived from official is promoted under bases/ and a standard build runs on it', async () => {
    const base = await build('custom-base-greet', { id: 'base-greet', kind: 'custom-base', image: { repository: 'bases/greet', tags: ['1'] } });
    expect(base.state).toMatchObject({ phase: 'pushed' });
    if (base.state.phase === 'pushed') {
      expect(base.state.verdict?.gates.find((g) => g.gate === 'official-base')).toMatchObject({ outcome: 'pass', code: 'OFFICIAL_BASE_OK' });
      expect(base.state.verdict?.officialBase).toMatch(/^official\/jre17:1@sha256:/);
    }
    const app = await build('java-on-greet', {
      id: 'on-greet',
      kind: 'standard',
      standard: { runtime: 'java17', environment: 'prod', base: 'bases/greet:1' },
      image: { repository: 'app/on-greet', tags: ['1'] },
    });
    expect(app.state).toMatchObject({ phase: 'pushed' });
    expect((await runImage(ref('app/on-greet', '1'), fleet.registry.host)).stdout).toContain('GREET_HOME=/opt/greet present=true');
    // The app's leading layers are the custom base's, whose leading layers are official/jre17's.
    const [greet, onGreet] = [await readImage(registry, 'bases/greet', '1'), await readImage(registry, 'app/on-greet', '1')];
    expect(onGreet.config.rootfs.diff_ids.slice(0, greet.config.rootfs.diff_ids.length)).toEqual(greet.config.rootfs.diff_ids);
  });

  it('a fully custom multi-stage build honours --target and build args, and passes the gates', async () => {
    const done = await build('multi-stage', {
      id: 'multi',
      target: 'runtime',
      buildArgs: { GREETING: 'hello-custom' },
      image: { repository: 'app/multi', tags: ['1', 'latest'] },
    });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    expect((await runImage(ref('app/multi', '1'), fleet.registry.host)).stdout).toBe('multi-stage says hello-custom');
    if (done.state.phase === 'pushed') {
      expect(await fetchManifestDigest(registry.endpoint, 'app/multi', 'latest')).toBe(done.state.digest);
      // No scanner pool in this fleet: the vulnerabilities gate reports itself skipped, every other gate passes.
      expect(done.state.verdict?.gates.filter((g) => g.outcome !== 'skipped').every((g) => g.outcome === 'pass')).toBe(true);
      expect(done.state.verdict?.gates.find((g) => g.outcome === 'skipped')?.gate).toBe('vulnerabilities');
    }
    const events = await storedEvents(fleet.client.nc, 'multi');
    expect(events.map((e) => e.type)).toEqual(['queued', 'started', 'verifying', 'verdict', 'pushed']);
  });

  it('refuses a standard build naming an unknown option, service or runtime, naming the field', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('java-plain'), null);
    const bad = fleet.client.submit({
      id: 'std-bad',
      kind: 'standard',
      context: { digest },
      standard: { runtime: 'java17', environment: 'prod', options: ['wget', 'rm-rf'], services: { nope: ['prod'] } },
      image: { repository: 'app/bad', tags: ['1'] },
    });
    await expect(bad).rejects.toMatchObject({ code: 'E_INVALID_REQUEST' });
    await expect(bad).rejects.toThrow(/standard\.options\.1: unknown option "rm-rf"/);
    await expect(bad).rejects.toThrow(/standard\.services\.nope/);
    await expect(fleet.client.status('std-bad')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});
