/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects and API answers are untyped JSON, read field by field */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { diesWithParent, type ChildHandle } from '../../adapters/child-process.ts';
import { cacheDir } from '../../adapters/environment.ts';
import { KUBERNETES_VERSION } from '../../images/versions.ts';
import { freePort } from '../../node/host.ts';
import { eventuallyValue } from '../helpers/eventually.ts';

/**
 * Every overlay against a real kube-apiserver (with etcd; scripts/k8s-tools --apiserver):
 * server-side dry-run of every object (strict field validation, KEDA and Prometheus operator
 * CRDs installed), and Pod Security admission deciding the level of each pod template: admitted
 * in its namespace, refused one level stricter. Runs when the API server is built (cached by
 * scripts/k8s-tools --apiserver, which .ci/run calls: about 13 minutes of CPU once) or when
 * K8S_APISERVER_CHECK=1 demands it (then a missing binary is built, not skipped).
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TOKEN = 'fleet-dry-run-admin-token';
const STRICTER: Record<string, string> = { privileged: 'baseline', baseline: 'restricted' };

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any };

const BUILT = existsSync(join(cacheDir(), 'k8s', 'bin', `kube-apiserver-${KUBERNETES_VERSION}`));

async function yamlToObjects(text: string): Promise<Obj[]> {
  const py = 'import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))';
  return JSON.parse((await execa('/usr/bin/python3', ['-c', py], { input: text })).stdout) as Obj[];
}

describe.skipIf(process.env.K8S_APISERVER_CHECK !== '1' && !BUILT)('deploy/kubernetes against a real API server', () => {
  let dir: string;
  let port: number;
  const children: ChildHandle[] = [];
  let tools: Record<string, string>;

  function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { host: '127.0.0.1', port, method, path, rejectUnauthorized: false, headers: { authorization: `Bearer ${TOKEN}`, ...(data === undefined ? {} : { 'content-type': 'application/json' }) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // plain text (readyz)
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  const resources = new Map<string, Array<{ name: string; kind: string; namespaced: boolean }>>();
  async function pathOf(o: Obj, dryRun: boolean): Promise<string> {
    const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
    if (!resources.has(base)) resources.set(base, ((await api('GET', base)).body as { resources: Array<{ name: string; kind: string; namespaced: boolean }> }).resources);
    const r = resources.get(base)?.find((x) => x.kind === o.kind && !x.name.includes('/'));
    if (r === undefined) throw new Error(`the API server serves no ${o.kind} in ${o.apiVersion}`);
    const ns = r.namespaced ? `/namespaces/${o.metadata.namespace ?? 'default'}` : '';
    return `${base}${ns}/${r.name}?fieldValidation=Strict${dryRun ? '&dryRun=All' : ''}`;
  }
  async function create(o: Obj, dryRun: boolean): Promise<{ status: number; body: any }> {
    resources.delete(o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`);
    return api('POST', await pathOf(o, dryRun), o);
  }

  beforeAll(async () => {
    const out = (await execa(`${ROOT}scripts/k8s-tools`, ['--apiserver'], { stderr: 'inherit' })).stdout;
    tools = Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    dir = await mkdtemp(join(tmpdir(), 'k8s-apiserver-'));
    const [etcdPort, peerPort] = [await freePort(), await freePort()];
    port = await freePort();
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    children.push(
      execa(...diesWithParent(tools.ETCD ?? 'etcd', ['--data-dir', join(dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl, '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-cluster', `default=http://127.0.0.1:${peerPort}`]), { reject: false, stdout: 'ignore', stderr: { file: join(dir, 'etcd.log') } }),
    );
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(join(dir, 'tokens.csv'), `${TOKEN},admin,admin-uid,system:masters\n`);
    children.push(
      execa(
        ...diesWithParent(tools.KUBE_APISERVER ?? 'kube-apiserver', [
          `--etcd-servers=${etcdUrl}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${port}`,
          `--cert-dir=${join(dir, 'certs')}`,
          `--service-account-key-file=${join(dir, 'sa.pub')}`,
          `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--service-account-issuer=https://kubernetes.default.svc',
          `--token-auth-file=${join(dir, 'tokens.csv')}`,
          '--authorization-mode=RBAC',
          '--allow-privileged=true',
          '--endpoint-reconciler-type=none',
          '--service-cluster-ip-range=10.96.0.0/12',
        ]),
        { reject: false, stdout: 'ignore', stderr: { file: join(dir, 'apiserver.log') } },
      ),
    );
    await eventuallyValue(async () => ((await api('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 90_000, 'the API server ready');
    // The CRDs the manifests use, installed for real.
    const dirOf = async (m: string): Promise<string> => JSON.parse((await execa('go', ['mod', 'download', '-json', m], { env: { GOFLAGS: '-mod=mod' } })).stdout).Dir as string;
    const keda = await dirOf('github.com/kedacore/keda/v2@v2.21.0');
    const promop = await dirOf('github.com/prometheus-operator/prometheus-operator@v0.85.0');
    const crdFiles = [
      ...(await readdir(join(keda, 'config/crd/bases'))).filter((f) => f.startsWith('keda.sh_')).map((f) => join(keda, 'config/crd/bases', f)),
      ...['servicemonitors', 'podmonitors', 'prometheusrules'].map((n) => join(promop, `example/prometheus-operator-crd/monitoring.coreos.com_${n}.yaml`)),
    ];
    for (const f of crdFiles) {
      for (const crd of await yamlToObjects((await execa('cat', [f])).stdout)) {
        const r = await api('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
        expect(r.status, `${f}: ${JSON.stringify(r.body).slice(0, 300)}`).toBe(201);
      }
    }
    await eventuallyValue(async () => ((await api('GET', '/apis/keda.sh/v1alpha1')).status === 200 && (await api('GET', '/apis/monitoring.coreos.com/v1')).status === 200 ? true : undefined), 60_000, 'the CRDs served');
  }, 40 * 60_000);

  afterAll(async () => {
    for (const c of children.reverse()) {
      c.kill('SIGTERM');
      await c;
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  for (const overlay of ['dev', 'production']) {
    it(`admits every object of ${overlay} (server-side dry-run) and puts each pool at its namespace's level`, async () => {
      const objects = await yamlToObjects((await execa(tools.KUSTOMIZE ?? 'kustomize', ['build', `${ROOT}deploy/kubernetes/overlays/${overlay}`])).stdout);
      // Namespaces and service accounts for real (pods are admitted only with their service account).
      for (const o of objects.filter((x) => x.kind === 'Namespace')) {
        const r = await create(o, false);
        expect([201, 409], JSON.stringify(r.body).slice(0, 300)).toContain(r.status);
        await create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: o.metadata.name } }, false);
      }
      for (const o of objects.filter((x) => x.kind === 'ServiceAccount')) expect([201, 409]).toContain((await create(o, false)).status);
      for (const o of objects.filter((x) => x.kind !== 'Namespace' && x.kind !== 'ServiceAccount')) {
        const r = await create(o, true);
        expect(r.status, `${overlay} ${o.kind}/${o.metadata.name}: ${JSON.stringify(r.body).slice(0, 400)}`).toBe(201);
      }
      const levels = Object.fromEntries(objects.filter((o) => o.kind === 'Namespace').map((o) => [o.metadata.name, o.metadata.labels?.['pod-security.kubernetes.io/enforce'] ?? '']));
      for (const o of objects) {
        const tpl = o.kind === 'ScaledJob' ? o.spec?.jobTargetRef?.template : ['Deployment', 'StatefulSet'].includes(o.kind) ? o.spec?.template : undefined;
        if (tpl === undefined) continue;
        const namespace = o.metadata.namespace ?? '';
        // A StatefulSet's claims become volumes of its pods: stand them in with emptyDirs.
        const claims = (o.spec?.volumeClaimTemplates ?? []).map((c: any) => ({ name: c.metadata.name, emptyDir: {} }));
        const spec = { ...tpl.spec, volumes: [...(tpl.spec.volumes ?? []), ...claims] };
        const pod = (ns: string): Obj => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `${o.metadata.name}-check`, namespace: ns }, spec: { ...spec, serviceAccountName: 'default' } });
        const admitted = await create(pod(namespace), true);
        expect(admitted.status, `${overlay} ${o.kind}/${o.metadata.name} in ${namespace} (${levels[namespace]}): ${JSON.stringify(admitted.body).slice(0, 400)}`).toBe(201);
        const stricter = STRICTER[levels[namespace] ?? ''];
        if (stricter === undefined) continue;
        const probe = `psa-${stricter}`;
        await create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: probe, labels: { 'pod-security.kubernetes.io/enforce': stricter } } }, false);
        await create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: probe } }, false);
        const refused = await create(pod(probe), true);
        expect(refused.status, `${o.metadata.name} must not pass ${stricter}`).toBe(403);
        expect(String(refused.body.message)).toContain(`violates PodSecurity "${stricter}`);
      }
    });
  }

  it('refuses a planted privileged pod in the builds namespace', async () => {
    const r = await create(
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'planted', namespace: 'fleet-builds' }, spec: { containers: [{ name: 'x', image: 'busybox', securityContext: { privileged: true } }] } },
      true,
    );
    expect(r.status).toBe(403);
    expect(String(r.body.message)).toContain('violates PodSecurity "baseline');
  });
});
