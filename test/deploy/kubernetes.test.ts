/* eslint-disable @typescript-eslint/no-explicit-any -- rendered Kubernetes objects are untyped JSON, read field by field */
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { consumers, streams } from '../../protocol/index.ts';
import { requireTlsOffLoopback } from '../../adapters/nats.ts';
import { CoordinatorOptions } from '../../coordinator/config.ts';
import { WorkerOptions } from '../../worker/config.ts';

/**
 * deploy/kubernetes without a cluster: every overlay builds with kustomize and every object it
 * renders validates with kubeconform -strict against the Kubernetes 1.36 schemas and the KEDA and
 * Prometheus operator CRD schemas (scripts/k8s-tools); an object without a schema fails. Then
 * what no schema knows: the fleet's own rules for its pods, drains and scalers.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KUBERNETES = `${ROOT}deploy/kubernetes`;

interface Tools {
  KUSTOMIZE: string;
  KUBECONFORM: string;
  K8S_SCHEMAS: string;
  CRD_SCHEMAS: string;
}
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

let tools: Tools;
const overlays = async (): Promise<string[]> => (await readdir(`${KUBERNETES}/overlays`)).sort();

async function build(overlay: string): Promise<string> {
  return (await execa(tools.KUSTOMIZE, ['build', `${KUBERNETES}/overlays/${overlay}`])).stdout;
}

/** Multi-document YAML to objects, with the python3-yaml scripts/k8s-tools ensures. */
async function parse(yamlText: string): Promise<Obj[]> {
  const py = 'import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))';
  return JSON.parse((await execa('/usr/bin/python3', ['-c', py], { input: yamlText })).stdout) as Obj[];
}

function podSpecs(objects: Obj[]): Array<{ owner: string; namespace: string; spec: any }> {
  const out: Array<{ owner: string; namespace: string; spec: any }> = [];
  for (const o of objects) {
    const tpl = o.kind === 'ScaledJob' ? o.spec?.jobTargetRef?.template : o.spec?.template;
    if (tpl?.spec !== undefined) out.push({ owner: `${o.kind}/${o.metadata.name}`, namespace: o.metadata.namespace ?? '', spec: tpl.spec });
  }
  return out;
}

describe('deploy/kubernetes', () => {
  beforeAll(async () => {
    const r = await execa(`${ROOT}scripts/k8s-tools`, [], { stderr: 'inherit' });
    tools = Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) as unknown as Tools;
  }, 20 * 60_000);

  it('has the dev and production overlays', async () => {
    expect(await overlays()).toEqual(['dev', 'production']);
  });

  it('renders every overlay to objects that kubeconform -strict validates, each against a schema', async () => {
    for (const overlay of await overlays()) {
      const rendered = await build(overlay);
      const r = await execa(
        tools.KUBECONFORM,
        [
          '-strict',
          '-summary',
          '-output',
          'json',
          '-schema-location',
          `${tools.K8S_SCHEMAS}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
          '-schema-location',
          `${tools.CRD_SCHEMAS}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`,
          '-',
        ],
        { input: rendered, reject: false },
      );
      const report = JSON.parse(r.stdout) as { resources: Array<{ kind: string; name: string; status: string; msg: string }>; summary: { valid: number; invalid: number; errors: number; skipped: number } };
      const problems = report.resources.filter((x) => x.status !== 'statusValid').map((x) => `${overlay}: ${x.kind}/${x.name}: ${x.msg}`);
      expect(problems).toEqual([]);
      expect(r.stderr + r.stdout).not.toContain('could not find schema');
      expect(r.exitCode).toBe(0);
      expect(report.summary).toMatchObject({ invalid: 0, errors: 0, skipped: 0 });
      expect(report.summary.valid).toBeGreaterThan(30);
    }
  });

  it('fails on an object without a schema and on a misspelt field (the check can fail)', async () => {
    const planted = 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec: { replica: 1, selector: {}, template: {} }\n---\napiVersion: example.com/v1\nkind: Unknown\nmetadata: { name: y }\n';
    const r = await execa(
      tools.KUBECONFORM,
      ['-strict', '-summary', '-schema-location', `${tools.K8S_SCHEMAS}/{{ .ResourceKind }}{{ .KindSuffix }}.json`, '-schema-location', `${tools.CRD_SCHEMAS}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`, '-'],
      { input: planted, reject: false },
    );
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toContain("additional properties 'replica' not allowed");
    expect(r.stdout).toContain('could not find schema for Unknown');
  });

  it('never runs a privileged container, a host path or a host namespace; pool pods meet their namespace level', async () => {
    for (const overlay of await overlays()) {
      const objects = await parse(await build(overlay));
      const levels = Object.fromEntries(objects.filter((o) => o.kind === 'Namespace').map((o) => [o.metadata.name, o.metadata.labels?.['pod-security.kubernetes.io/enforce']]));
      expect(levels).toEqual({ 'fleet-system': 'restricted', 'fleet-builds': 'baseline', 'fleet-buildkit': 'privileged' });
      for (const { owner, namespace, spec } of podSpecs(objects)) {
        const where = `${overlay} ${owner}`;
        expect(spec.hostNetwork ?? false, where).toBe(false);
        expect(spec.hostPID ?? false, where).toBe(false);
        expect(spec.hostIPC ?? false, where).toBe(false);
        expect((spec.volumes ?? []).filter((v: any) => v.hostPath !== undefined), where).toEqual([]);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          expect(c.securityContext?.privileged ?? false, where).toBe(false);
          const added: string[] = c.securityContext?.capabilities?.add ?? [];
          // SETFCAP: newuidmap's right to give a nested user namespace a root; SYS_CHROOT: buildah's
          // chroot isolation under RuntimeDefault seccomp (test/deploy/worker-pod.test.ts)
          expect(added.filter((a) => !['SETUID', 'SETGID', 'SETFCAP', 'SYS_CHROOT'].includes(a)), where).toEqual([]);
          if (namespace === 'fleet-system') {
            expect(c.securityContext, where).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
            expect(added, where).toEqual([]);
          }
        }
        if (namespace === 'fleet-system') expect(spec.securityContext, where).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        if (namespace === 'fleet-builds') expect(spec.hostUsers, where).toBe(false);
        // an unmasked /proc only inside the pod's own user namespace (the API server also insists), and only for
        // the pools whose builder starts containers of its own in the pod (BuildKit's runc process sandbox,
        // kaniko's rootless podman): runc mounts a fresh /proc for each, which the kernel refuses over a masked one
        if (spec.containers.some((c: any) => c.securityContext?.procMount === 'Unmasked')) {
          expect(spec.hostUsers, where).toBe(false);
          expect(['Deployment/worker-buildkit', 'ScaledJob/worker-buildkit', 'Deployment/worker-kaniko', 'ScaledJob/worker-kaniko'], where).toContain(owner);
        }
        if (namespace === 'fleet-buildkit') expect(spec.hostUsers, where).toBe(false);
        if (spec.securityContext?.seccompProfile?.type === 'Unconfined') expect(namespace, where).toBe('fleet-buildkit');
        expect(spec.securityContext?.runAsUser ?? 0, `${where}: workers never run as root`).not.toBe(0);
      }
    }
  });

  it('configures the coordinator and every worker with options their schemas accept, NATS over verified TLS', async () => {
    for (const overlay of await overlays()) {
      const objects = await parse(await build(overlay));
      const configs = objects.flatMap((o) => (o.kind === 'ConfigMap' ? Object.entries(o.data ?? {}).map(([k, v]) => ({ where: `${overlay} ${o.metadata.name}/${k}`, k, v })) : []));
      const checked = configs.filter((c) => c.k === 'coordinator.json' || c.k === 'worker.json');
      expect(checked.map((c) => c.k).sort()).toEqual(['coordinator.json', 'worker.json', 'worker.json', 'worker.json']);
      for (const c of checked) {
        const parsed = (c.k === 'coordinator.json' ? CoordinatorOptions : WorkerOptions).safeParse(JSON.parse(c.v));
        expect(parsed.success ? [] : parsed.error.issues, c.where).toEqual([]);
        const options = JSON.parse(c.v) as { natsUrl: string; natsCredentials: { tlsCaFile?: string } };
        expect(() => requireTlsOffLoopback(options.natsUrl, options.natsCredentials), c.where).not.toThrow();
      }
    }
  });

  it('gives every worker a grace period longer than its drain, a preStop that starts it, and a scaler on its pool consumer', async () => {
    for (const overlay of await overlays()) {
      const objects = await parse(await build(overlay));
      const workerConfigs = new Map(
        objects
          .filter((o) => o.kind === 'ConfigMap' && o.data?.['worker.json'] !== undefined)
          .map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, JSON.parse(o.data?.['worker.json'] ?? '{}') as { pool: string; drainGraceMs: number; metricsPort: number }]),
      );
      expect(workerConfigs.size).toBe(3);
      const scalers = objects.filter((o) => o.kind === 'ScaledObject' || o.kind === 'ScaledJob');
      for (const [key, config] of workerConfigs) {
        const [namespace, name] = key.split('/') as [string, string];
        const pods = podSpecs(objects).filter((p) => p.namespace === namespace && p.spec.volumes?.some((v: any) => v.configMap?.name === name));
        expect(pods.length, key).toBe(1);
        const spec = pods[0]?.spec;
        expect(spec.terminationGracePeriodSeconds * 1000, key).toBeGreaterThan(config.drainGraceMs);
        expect(JSON.stringify(spec.containers[0].lifecycle?.preStop), key).toContain("process.kill(1, 'SIGTERM')");
        expect(spec.containers[0].ports, key).toContainEqual({ name: 'metrics', containerPort: config.metricsPort });
        const scaler = scalers.find((s) => s.metadata.namespace === namespace && s.metadata.name === name);
        expect(scaler, key).toBeDefined();
        expect(scaler?.spec.triggers).toEqual([
          {
            type: 'nats-jetstream',
            metadata: expect.objectContaining({ stream: streams.jobs, consumer: consumers.pool(config.pool), account: '$G', natsServerMonitoringEndpoint: 'nats-headless.fleet-system.svc:8222' }),
          },
        ]);
        // the scaler's documented metadata keys only (KEDA ignores a misspelt one silently)
        const known = ['natsServerMonitoringEndpoint', 'account', 'stream', 'consumer', 'lagThreshold', 'activationLagThreshold', 'useHttps'];
        expect(Object.keys(scaler?.spec.triggers[0].metadata ?? {}).filter((k) => !known.includes(k))).toEqual([]);
      }
    }
  });
});
