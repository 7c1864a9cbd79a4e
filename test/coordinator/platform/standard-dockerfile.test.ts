import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../../coordinator/platform/catalog.ts';
import { renderStandard } from '../../../coordinator/platform/standard-dockerfile.ts';
import { StandardSpec } from '../../../protocol/index.ts';

describe('standard Dockerfile rendering', () => {
  it('adds services only for the environments the app enables them in', async () => {
    const catalog = await loadCatalog();
    const spec = (environment: string) => StandardSpec.parse({ runtime: 'java17', environment, options: ['wget'], services: { jacoco: ['test'] } });
    const test = renderStandard(spec('test'), catalog, 'reg:5000');
    const prod = renderStandard(spec('prod'), catalog, 'reg:5000');
    expect(test.dockerfile).toContain('FROM ${FLEET_SVC_JACOCO} AS svc-jacoco');
    expect(test.dockerfile).toContain('JAVA_TOOL_OPTIONS');
    expect(test.buildArgs.FLEET_SVC_JACOCO).toBe('reg:5000/platform/jacoco:0.8.6');
    expect(prod.dockerfile.toLowerCase()).not.toContain('jacoco');
    expect(prod.buildArgs).toEqual({ FLEET_BUILD_BASE: 'reg:5000/official/jdk17:1', FLEET_RUNTIME_BASE: 'reg:5000/official/jre17:1' });
    for (const r of [test, prod]) expect(r.dockerfile).toContain('apt-get install -y --no-install-recommends wget');
    expect(prod.dockerfile).not.toMatch(/\{\{/);
  });

  it('runs build-env.sh before javac and image-env.sh in the image stage', async () => {
    const { dockerfile } = renderStandard(StandardSpec.parse({ runtime: 'java17', environment: 'prod' }), await loadCatalog(), 'r');
    const buildEnv = dockerfile.indexOf('.paas/build-env.sh');
    expect(buildEnv).toBeGreaterThan(-1);
    expect(dockerfile.indexOf('javac')).toBeGreaterThan(buildEnv);
    expect(dockerfile.indexOf('/opt/paas/image-env.sh')).toBeGreaterThan(dockerfile.indexOf('FROM ${FLEET_RUNTIME_BASE}'));
    expect(dockerfile.trimEnd().split('\n').slice(-4)).toEqual([
      'WORKDIR /app',
      'USER app',
      'ENTRYPOINT ["java", "-jar", "/app/app.jar"]',
      'LABEL io.fleet.kind="standard" io.fleet.runtime="java17" io.fleet.environment="prod" io.fleet.options="" io.fleet.services=""',
    ]);
  });

  it('refuses unknown ids with every offending field path, and uses an approved custom base', async () => {
    const catalog = await loadCatalog();
    expect(() => renderStandard(StandardSpec.parse({ runtime: 'cobol', environment: 'prod', options: ['x'] }), catalog, 'r')).toThrow(
      /standard\.runtime: unknown runtime "cobol".*standard\.options\.0: unknown option "x"/,
    );
    const onBase = renderStandard(StandardSpec.parse({ runtime: 'java17', environment: 'prod', base: 'bases/greet:1' }), catalog, 'r');
    expect(onBase.buildArgs.FLEET_RUNTIME_BASE).toBe('r/bases/greet:1');
  });
});
