import { ErrorCode, FleetError, type Issue, type StandardSpec } from '../../protocol/index.ts';
import type { LoadedCatalog } from './catalog.ts';

export interface RenderedStandard {
  dockerfile: string;
  /** FLEET_* build args naming the platform images the Dockerfile uses, as full references */
  buildArgs: Record<string, string>;
}

/**
 * Renders the canonical Dockerfile of a standard build from the runtime's template and the
 * catalog's fixed fragments. The request contributes ids only; every id is checked against the
 * catalog, and an unknown one is refused with its field path.
 */
export function renderStandard(spec: StandardSpec, loaded: LoadedCatalog, registry: string): RenderedStandard {
  const { catalog, templates } = loaded;
  const issues: Issue[] = [];
  const runtime = catalog.runtimes[spec.runtime];
  const template = templates.get(spec.runtime);
  if (runtime === undefined || template === undefined) {
    issues.push({ path: 'standard.runtime', message: `unknown runtime "${spec.runtime}"; known: ${Object.keys(catalog.runtimes).join(', ')}` });
  }
  spec.options.forEach((id, i) => {
    if (catalog.options[id] === undefined) {
      issues.push({ path: `standard.options.${i}`, message: `unknown option "${id}"; known: ${Object.keys(catalog.options).join(', ')}` });
    }
  });
  const enabled: string[] = [];
  for (const [id, environments] of Object.entries(spec.services)) {
    const service = catalog.services[id];
    if (service === undefined) {
      issues.push({ path: `standard.services.${id}`, message: `unknown service "${id}"; known: ${Object.keys(catalog.services).join(', ')}` });
    } else if (!service.runtimes.includes(spec.runtime)) {
      issues.push({ path: `standard.services.${id}`, message: `service "${id}" is not offered for runtime "${spec.runtime}"` });
    } else if (environments.includes(spec.environment)) {
      enabled.push(id);
    }
  }
  if (issues.length > 0 || runtime === undefined || template === undefined) {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }

  const ref = (image: string): string => `${registry}/${image}`;
  const buildArgs: Record<string, string> = {
    FLEET_BUILD_BASE: ref(runtime.buildBase),
    FLEET_RUNTIME_BASE: spec.base === undefined ? ref(runtime.runtimeBase) : ref(spec.base),
  };
  const stages: string[] = [];
  const serviceLines: string[] = [];
  for (const id of enabled.sort()) {
    const service = catalog.services[id];
    if (service === undefined) continue;
    const arg = `FLEET_SVC_${id.toUpperCase().replace(/-/g, '_')}`;
    const stage = `svc-${id}`;
    buildArgs[arg] = ref(service.image);
    stages.push(`ARG ${arg}`, `FROM \${${arg}} AS ${stage}`);
    serviceLines.push(`# service ${id} (enabled for ${spec.environment})`, ...service.fragment.map((l) => l.replaceAll('{{stage}}', stage)));
  }
  const optionLines = [...new Set(spec.options)].flatMap((id) => [`# option ${id}`, ...(catalog.options[id]?.fragment ?? [])]);
  const labels = {
    'io.fleet.kind': 'standard',
    'io.fleet.runtime': spec.runtime,
    'io.fleet.environment': spec.environment,
    'io.fleet.options': [...new Set(spec.options)].sort().join(','),
    'io.fleet.services': enabled.join(','),
  };
  // Written as a LABEL instruction, not passed as --label: the same form on all three builders.
  // (It began as a workaround: buildah 1.28 lost its layer cache for every stage after the first
  // with --label, containers/buildah#4950; the 1.43 the pools run no longer does.) Values are
  // catalog ids, so quoting them is safe.
  const labelLine = `LABEL ${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(' ')}`;
  const dockerfile = `${template
    .replace('{{service-stages}}', stages.join('\n'))
    .replace('{{options}}', optionLines.join('\n'))
    .replace('{{services}}', serviceLines.join('\n'))
    .trimEnd()}\n${labelLine}\n`;
  return { dockerfile, buildArgs };
}
