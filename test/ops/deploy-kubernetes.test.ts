/**
 * deploy/kubernetes/: every manifest parses, and the fields that matter hold: the image and its entry point, `bridge`
 * arguments that are real subcommands and flags, the config in the ConfigMap validates and points at the mounted
 * volumes and Secret files, probes on /healthz and /readyz, memory sized from the benchmark, non-root with a read-only
 * root file system, one CronJob per connector with concurrencyPolicy Forbid, and a single-replica Deployment.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { exposureOf, validateConfig } from '../../src/config/index.js';
import { assertBridgeArgs } from './bridge-args.js';

const root = resolve(import.meta.dirname, '../..');
const dir = resolve(root, 'deploy/kubernetes');

/** The parts of the manifests these tests read (YAML as parsed: a quantity may be a number). */
type Labels = Record<string, string>;
type Quantity = string | number;
interface ResourceList {
  cpu?: Quantity;
  memory?: Quantity;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  securityContext?: Record<string, unknown>;
  resources?: { requests?: ResourceList; limits?: ResourceList };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; defaultMode?: number };
  emptyDir?: Record<string, unknown>;
  persistentVolumeClaim?: { claimName: string };
}
interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: unknown[];
}
interface PodAffinityTerm {
  labelSelector?: LabelSelector;
  namespaces?: string[];
  namespaceSelector?: unknown;
  topologyKey: string;
}
interface PodSpec {
  affinity?: { podAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: PodAffinityTerm[] } };
  securityContext?: Record<string, unknown>;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  restartPolicy?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
}
interface PodTemplate {
  metadata?: { labels?: Labels };
  spec: PodSpec;
}
interface K8sObject<K extends string> {
  apiVersion: string;
  kind: K;
  metadata: { name: string; namespace?: string; labels?: Labels };
}
interface ConfigMap extends K8sObject<'ConfigMap'> {
  data?: Record<string, string>;
}
interface Secret extends K8sObject<'Secret'> {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface PersistentVolumeClaim extends K8sObject<'PersistentVolumeClaim'> {
  spec: { accessModes?: string[] };
}
interface PodFailurePolicyRule {
  action: string;
  onExitCodes?: { containerName?: string; operator: string; values: number[] };
  onPodConditions?: Array<{ type: string; status?: string }>;
}
interface CronJob extends K8sObject<'CronJob'> {
  spec: {
    schedule: string;
    concurrencyPolicy?: string;
    jobTemplate: { spec: { backoffLimit?: number; podFailurePolicy?: { rules: PodFailurePolicyRule[] }; template: PodTemplate } };
  };
}
interface Deployment extends K8sObject<'Deployment'> {
  spec: { replicas?: number; strategy?: { type: string }; selector: { matchLabels?: Labels }; template: PodTemplate };
}
interface Service extends K8sObject<'Service'> {
  spec: { type?: string; selector?: Labels; ports?: Array<{ name?: string; port: number; targetPort?: string | number }> };
}
type Manifest = ConfigMap | Secret | PersistentVolumeClaim | CronJob | Deployment | Service;
type Kind = Manifest['kind'];
type ManifestOf<K extends Kind> = Extract<Manifest, { kind: K }> & { file: string };

const files = readdirSync(dir)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();
const manifests: Array<Manifest & { file: string }> = files.flatMap((file) =>
  parseAllDocuments(readFileSync(resolve(dir, file), 'utf8')).map((doc) => {
    expect(doc.errors, file).toEqual([]);
    return { ...(doc.toJS() as Manifest), file };
  }),
);
const ofKind = <K extends Kind>(kind: K): Array<ManifestOf<K>> => manifests.filter((m): m is ManifestOf<K> => m.kind === kind);
const one = <K extends Kind>(kind: K, name: string): ManifestOf<K> => {
  const found = ofKind(kind).find((m) => m.metadata.name === name);
  expect(found, `${kind} ${name}`).toBeDefined();
  return found as ManifestOf<K>;
};

const dockerfile = readFileSync(resolve(root, 'Dockerfile'), 'utf8');
const imageUid = Number(/useradd [^\n]*--uid (\d+)/.exec(dockerfile)?.[1]);
const imageGid = Number(/groupadd [^\n]*--gid (\d+)/.exec(dockerfile)?.[1]);
const imageConfigPath = /BRIDGE_CONFIG=(\S+)/.exec(dockerfile)?.[1] ?? '';
const imageVolumes = JSON.parse(/VOLUME (\[.*\])/.exec(dockerfile)?.[1] ?? '[]') as string[];
/** Peak RSS of the benchmark's 1M-event end-to-end run. */
const benchPeakMb = Number(/\| end to end \|[^|]*peak RSS (\d+) MB/.exec(readFileSync(resolve(root, 'bench/results.md'), 'utf8'))?.[1]);

const configMap = one('ConfigMap', 'bridge-config');
const configFile = imageConfigPath.split('/').pop() ?? '';
const config = validateConfig(parseAllDocuments(String(configMap.data?.[configFile] ?? ''))[0]?.toJS(), 'ConfigMap bridge-config');
const cronJobs = ofKind('CronJob');
const deployment = one('Deployment', 'bridge');
const pods: Array<[string, PodSpec]> = [
  ...cronJobs.map((c): [string, PodSpec] => [`CronJob ${c.metadata.name}`, c.spec.jobTemplate.spec.template.spec]),
  [`Deployment ${deployment.metadata.name}`, deployment.spec.template.spec],
];
const mainContainer = (pod: PodSpec): Container => {
  const found = pod.containers.find((c) => c.name === 'bridge');
  expect(found).toBeDefined();
  return found as Container;
};

function bytes(quantity: Quantity | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(String(quantity));
  expect(match, `quantity ${quantity}`).not.toBeNull();
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[match?.[2] ?? ''] ?? 1;
  return Number(match?.[1]) * unit;
}

/** Where a pod mounts each volume kind: path → volume definition, for the bridge container. */
function mounts(pod: PodSpec, container: Container): Map<string, Volume | undefined> {
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  return new Map(
    (container.volumeMounts ?? []).map((m) => {
      expect(volumes.has(m.name), `volume ${m.name}`).toBe(true);
      return [m.mountPath, volumes.get(m.name)];
    }),
  );
}

describe('deploy/kubernetes manifests', () => {
  it('parse, are namespace-agnostic and labelled, and hold the expected objects', () => {
    expect(files.length).toBeGreaterThan(0);
    for (const m of manifests) {
      expect(m.apiVersion, m.file).toBeTruthy();
      expect(m.metadata?.name, m.file).toMatch(/^[a-z0-9-]+$/);
      expect(m.metadata.namespace, `${m.file}: ${m.kind} ${m.metadata.name} names no namespace`).toBeUndefined();
      expect(m.metadata.labels?.['app.kubernetes.io/name'], `${m.kind} ${m.metadata.name}`).toBe('epic-purview-bridge');
    }
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
      expect.arrayContaining([
        'ConfigMap/bridge-config',
        'Deployment/bridge',
        'PersistentVolumeClaim/bridge-state',
        'Secret/bridge-api-tokens',
        'Secret/bridge-purview',
        'Secret/bridge-smart-keys',
        'Service/bridge',
      ]),
    );
    expect(cronJobs.length).toBeGreaterThan(0);
  });

  it('Secrets are templates whose every value is a marked placeholder', () => {
    for (const secret of ofKind('Secret')) {
      expect(secret.file).toMatch(/template/);
      expect(secret.data, `${secret.metadata.name}: no base64 data`).toBeUndefined();
      for (const [key, value] of Object.entries(secret.stringData ?? {})) expect(String(value), `${secret.metadata.name}.${key}`).toMatch(/^REPLACE-/);
    }
  });

  it('the config in the ConfigMap validates and is read from where the image looks for it', () => {
    expect(imageConfigPath).toBe('/etc/bridge/bridge.config.yaml');
    expect(config.server).toMatchObject({ host: '0.0.0.0', port: 8080 });
    expect(config.stateDir).toBe('/app/state');
    for (const [name, pod] of pods) {
      const at = mounts(pod, mainContainer(pod));
      const configVolume = at.get(imageConfigPath.slice(0, imageConfigPath.lastIndexOf('/')));
      expect(configVolume?.configMap?.name, name).toBe('bridge-config');
    }
  });

  it("every pod: non-root as the image's uid, read-only root file system, no privilege escalation, no capabilities", () => {
    expect(imageUid).toBe(10001);
    for (const [name, pod] of pods) {
      expect(pod.securityContext, name).toMatchObject({
        runAsNonRoot: true,
        runAsUser: imageUid,
        runAsGroup: imageGid,
        fsGroup: imageGid,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.automountServiceAccountToken, name).toBe(false);
      for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
        const where = `${name} container ${container.name}`;
        expect(container.securityContext, where).toEqual({
          runAsNonRoot: true,
          runAsUser: imageUid,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(container.resources?.limits?.memory, where).toBeDefined();
        expect(container.resources?.limits?.cpu, where).toBeDefined();
        expect(container.resources?.requests?.memory, where).toBeDefined();
      }
      // A read-only root needs a writable /tmp.
      expect(mounts(pod, mainContainer(pod)).get('/tmp')?.emptyDir, name).toBeDefined();
    }
  });

  it('every pod runs one image, pinned, through its entry point, with real bridge subcommands and flags', () => {
    const images = new Set(pods.flatMap(([, pod]) => [...(pod.initContainers ?? []), ...pod.containers].map((c) => c.image)));
    expect(images.size).toBe(1);
    const [image] = [...images];
    expect(image).toMatch(/^[\w.-]+(:\d+)?\/[\w./-]+:[\w.-]+$/);
    expect(image).not.toMatch(/:latest$/);
    for (const [name, pod] of pods) {
      const bridge = mainContainer(pod);
      // No command: the image's ENTRYPOINT (node with the heap flags, dist/cli/main.js) stays in force.
      expect(bridge.command, name).toBeUndefined();
      expect(bridge.args?.length, name).toBeGreaterThan(0);
      assertBridgeArgs(bridge.args ?? []);
    }
  });

  it("memory requests and limits cover the benchmark's peak RSS", () => {
    expect(benchPeakMb).toBeGreaterThan(100);
    for (const [name, pod] of pods) {
      const { requests, limits } = mainContainer(pod).resources ?? {};
      expect(bytes(requests?.memory), `${name}: request ≥ the 1M-event peak`).toBeGreaterThanOrEqual(benchPeakMb * 1e6);
      expect(bytes(limits?.memory), `${name}: limit ≥ 1.5 × the peak (heap cap 256 MB + native)`).toBeGreaterThanOrEqual(1.5 * benchPeakMb * 1e6);
      expect(bytes(limits?.memory), `${name}: limit`).toBeLessThanOrEqual(bytes('1Gi'));
      expect(bytes(requests?.memory)).toBeLessThanOrEqual(bytes(limits?.memory));
    }
  });

  it('state on the PVC, keys copied 0600 from their Secret, every secret file of the config mounted from a Secret key', () => {
    const pvc = one('PersistentVolumeClaim', 'bridge-state');
    expect(pvc.spec.accessModes).toEqual(['ReadWriteOnce']);
    const secrets = new Map(ofKind('Secret').map((s) => [s.metadata.name, Object.keys(s.stringData ?? {})]));
    const connector = config.connectors[0];
    expect(imageVolumes.sort()).toEqual([config.stateDir, connector?.smart?.keysDir].sort());
    for (const [name, pod] of pods) {
      const at = mounts(pod, mainContainer(pod));
      expect(at.get(config.stateDir)?.persistentVolumeClaim?.claimName, name).toBe(pvc.metadata.name);
      for (const c of config.connectors) expect(at.get(c.smart?.keysDir ?? '')?.emptyDir, `${name}: ${c.smart?.keysDir}`).toBeDefined();
      // The init container copies the keys Secret into that emptyDir and makes the private keys 0600.
      const init = pod.initContainers?.find((c) => c.name === 'keys');
      const initAt = mounts(pod, init as Container);
      const keysSecretPath = [...initAt].find(([, v]) => v?.secret?.secretName === 'bridge-smart-keys')?.[0];
      expect(keysSecretPath, name).toBeDefined();
      expect(initAt.get(connector?.smart?.keysDir ?? '')?.emptyDir, name).toBeDefined();
      expect(init?.command?.join(' '), name).toBe(
        `sh -c cp -L ${keysSecretPath}/* ${connector?.smart?.keysDir}/ && chmod 0600 ${connector?.smart?.keysDir}/*.pem`,
      );

      // Every { file } secret the pod's runs read sits under a Secret volume, named by one of its keys.
      const refs = [...config.connectors.map((c) => c.purview.secret), ...(name.startsWith('Deployment') ? [config.server.apiTokens] : [])];
      for (const ref of refs) {
        expect(ref && 'file' in ref, `${name}: secrets are files`).toBe(true);
        const file = ref && 'file' in ref ? ref.file : '';
        const folder = file.slice(0, file.lastIndexOf('/'));
        const secret = at.get(folder)?.secret;
        expect(secret?.secretName, `${name}: ${file}`).toBeDefined();
        expect(secrets.get(secret?.secretName ?? ''), `${name}: ${file}`).toContain(file.slice(folder.length + 1));
        // 0440 with fsGroup: readable by the bridge's group, not by others.
        expect(secret?.defaultMode, `${name}: ${file}`).toBe(0o440);
        // As the kubelet leaves it (group fsGroup, group read added), the bridge, in group runAsGroup, warns of nothing.
        const asMounted = { mode: 0o100000 | (secret?.defaultMode ?? 0o644) | 0o440, gid: Number(pod.securityContext?.['fsGroup']) };
        expect(exposureOf(asMounted, Number(pod.securityContext?.['runAsGroup']), 'linux'), `${name}: ${file}`).toBeUndefined();
      }
    }
  });

  it('one CronJob per connector: sync --connector <name>, concurrencyPolicy Forbid, no retry of a bad config', () => {
    expect(cronJobs.map((c) => c.metadata.name).sort()).toEqual(config.connectors.map((c) => `bridge-sync-${c.name}`).sort());
    for (const cronJob of cronJobs) {
      const spec = cronJob.spec;
      const connector = cronJob.metadata.name.replace(/^bridge-sync-/, '');
      expect(spec.concurrencyPolicy, cronJob.metadata.name).toBe('Forbid');
      expect(spec.schedule.split(' ')).toHaveLength(5);
      const pod: PodSpec = spec.jobTemplate.spec.template.spec;
      expect(pod.restartPolicy).toBe('Never');
      expect(mainContainer(pod).args).toEqual(['sync', '--connector', connector]);
      expect(spec.jobTemplate.spec.podFailurePolicy?.rules).toContainEqual({
        action: 'FailJob',
        onExitCodes: { containerName: 'bridge', operator: 'In', values: [2] },
      });
      // The CronJob schedules its connector: bridge serve must not run it on a schedule as well.
      expect(config.connectors.find((c) => c.name === connector)?.schedule.enabled).toBe(false);
    }
  });

  it("a CronJob's retries outlast the lease of a run that was killed, and an evicted pod's retry is not counted", () => {
    // The Job controller recreates a failed pod after 10 s, 20 s, 40 s … (capped at 6 minutes). A run killed mid-block
    // (SIGKILL, an OOM kill) leaves its lease to expire up to state.leaseTtlSeconds later; the retry's pod has another
    // hostname, so the lease is not recognised as stale, and until then every retry exits 6. At least one retry must
    // come after that.
    const retryDelaySeconds = (retry: number): number => Math.min(10 * 2 ** (retry - 1), 360);
    for (const cronJob of cronJobs) {
      const job = cronJob.spec.jobTemplate.spec;
      const retries = job.backoffLimit ?? 6; // the Job API's default
      const waited = Array.from({ length: retries }, (_, i) => retryDelaySeconds(i + 1)).reduce((a, b) => a + b, 0);
      expect(waited, `${cronJob.metadata.name}: backoffLimit ${retries} waits ${waited} s in all`).toBeGreaterThanOrEqual(config.state.leaseTtlSeconds);
      // Exit status 6 (a run in progress) must stay retryable: no rule may fail the Job on it.
      for (const rule of job.podFailurePolicy?.rules ?? []) {
        if (rule.action === 'FailJob' && rule.onExitCodes?.operator === 'In') expect(rule.onExitCodes.values, cronJob.metadata.name).not.toContain(6);
      }
      // A node drain or a preemption is no failure of the run: it must not use up the retries the lease needs.
      expect(job.podFailurePolicy?.rules, cronJob.metadata.name).toContainEqual({
        action: 'Ignore',
        onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }],
      });
    }
  });

  it("every pod that mounts a ReadWriteOnce claim the Deployment mounts is scheduled onto the Deployment pod's node", () => {
    // A ReadWriteOnce volume is attached to one node at a time: a second pod on another node waits on it forever (a
    // Multi-Attach error), which for a CronJob's pod means no sync until activeDeadlineSeconds fails it.
    const rwo = new Set(
      ofKind('PersistentVolumeClaim')
        .filter((pvc) => pvc.spec.accessModes?.includes('ReadWriteOnce'))
        .map((pvc) => pvc.metadata.name),
    );
    const claims = (pod: PodSpec): string[] => (pod.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
    const serveLabels = deployment.spec.template.metadata?.labels ?? {};
    const shared = claims(deployment.spec.template.spec).filter((claim) => rwo.has(claim));
    expect(shared.length).toBeGreaterThan(0);
    const others = cronJobs.map((c): [string, PodTemplate] => [`CronJob ${c.metadata.name}`, c.spec.jobTemplate.spec.template]);
    let checked = 0;
    for (const [name, template] of others) {
      if (!claims(template.spec).some((claim) => shared.includes(claim))) continue;
      checked += 1;
      const terms = template.spec.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
      const selects = (selector: LabelSelector | undefined, labels: Labels): boolean =>
        selector?.matchExpressions === undefined &&
        Object.keys(selector?.matchLabels ?? {}).length > 0 &&
        Object.entries(selector?.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
      const toServe = terms.filter(
        (term) =>
          term.topologyKey === 'kubernetes.io/hostname' &&
          // Its own namespace, where the Deployment runs.
          term.namespaces === undefined &&
          term.namespaceSelector === undefined &&
          selects(term.labelSelector, serveLabels) &&
          // …and only the Deployment's pods: a selector that also matched this pod's own labels could place it beside
          // another Job's pod instead.
          !selects(term.labelSelector, template.metadata?.labels ?? {}),
      );
      expect(toServe, `${name}: a required podAffinity to the Deployment's labels on kubernetes.io/hostname`).toHaveLength(1);
    }
    expect(checked).toBe(cronJobs.length);
  });

  it('the Deployment: one replica, Recreate, serve with probes on /healthz and /readyz, a ClusterIP Service', () => {
    const spec = deployment.spec;
    expect(spec.replicas).toBe(1);
    expect(spec.strategy).toEqual({ type: 'Recreate' });
    const pod: PodSpec = spec.template.spec;
    const bridge = mainContainer(pod);
    expect(bridge.args).toEqual(['serve']);
    expect(bridge.ports).toEqual([{ name: 'http', containerPort: config.server.port }]);
    expect(bridge.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(bridge.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(bridge.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(spec.selector.matchLabels).toEqual(spec.template.metadata?.labels);
    const service = one('Service', 'bridge');
    expect(service.spec.type).toBe('ClusterIP');
    expect(service.spec.selector).toEqual(spec.selector.matchLabels);
    expect(service.spec.ports).toEqual([{ name: 'http', port: config.server.port, targetPort: 'http' }]);
    // SIGTERM lets the run in flight reach a checkpoint within server.shutdownGraceMs.
    expect((deployment.spec.template.spec.terminationGracePeriodSeconds as number) * 1000).toBeGreaterThan(config.server.shutdownGraceMs);
  });
});

/** The Kubernetes API schemas come from the `kubernetes-models` package (a pinned dev dependency). */
describe('deploy/kubernetes against the Kubernetes API schemas (kubernetes-models)', () => {
  it('every manifest validates', async () => {
    const groups: Record<string, string> = { v1: 'v1', 'apps/v1': 'apps/v1', 'batch/v1': 'batch/v1' };
    for (const m of manifests) {
      const group = groups[m.apiVersion];
      expect(group, `${m.file}: ${m.apiVersion}`).toBeDefined();
      const specifier = `kubernetes-models/${group}/${m.kind}`;
      const Model = ((await import(specifier)) as Record<string, new (input: unknown) => { validate(): void }>)[m.kind];
      const { file: _file, ...manifest } = m;
      expect(() => new (Model as new (input: unknown) => { validate(): void })(manifest).validate(), `${m.file}: ${m.kind} ${m.metadata.name}`).not.toThrow();
    }
  });
});
