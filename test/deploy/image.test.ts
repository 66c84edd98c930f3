import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import YAML from 'yaml';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { freePort } from '../helpers/free-port.ts';
import { deleteStream, freshStream, NATS_TEST_URL, natsAvailable } from '../helpers/nats.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { tempDir } from '../helpers/temp.ts';
import { buildImage, fetchInside, podman, podmanOk, until } from './podman.ts';
import { toolsAvailable } from './tools.ts';

// biome-ignore lint/suspicious/noExplicitAny: inspected and rendered objects are walked by path
type Loose = any;

const BIN = path.resolve('bin/bertha.js');
const IMAGE_USER = '10001';

/** The `status` and parsed body of a fetch made inside the container, or undefined while it cannot connect. */
function answerInside(container: string, url: string, init?: RequestInit): { status: number; body: Loose } | undefined {
  const result = fetchInside(container, url, init);
  if (result.status !== 0) return undefined;
  const { status, body } = JSON.parse(result.stdout) as { status: number; body: string };
  return { status, body: JSON.parse(body) };
}

/** Podman 4.3 reads a Secret for kube play from a podman secret: a JSON object of base64 values. */
function podmanSecret(dir: string, name: string, data: Record<string, string>): void {
  podman(['secret', 'rm', name]);
  const encoded = Object.fromEntries(
    Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
  );
  // From a file: podman takes `-` only from a named pipe, and Node's child stdin is a socket.
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(encoded), { mode: 0o600 });
  podmanOk(['secret', 'create', name, file]);
}

const available = toolsAvailable('podman', 'runc', 'debootstrap');

describe.skipIf(!available)('the container image', () => {
  let image: string;

  // .ci/run builds the image before the tests and names it in BERTHA_TEST_IMAGE; elsewhere it is
  // built here (on a fresh machine the base and every layer: minutes; then a cache hit).
  beforeAll(() => {
    image = process.env.BERTHA_TEST_IMAGE || buildImage();
  }, 30 * 60_000);

  test('runs `bertha up` as a non-root user on a read-only root without compilers: HEALTHCHECK, a chat answer from inside, exit 0 on SIGTERM', async () => {
    const models = tempDir();
    const tiny = await writeTinyLlama(models);
    // The container's user reads the model through the bind mount.
    chmodSync(models, 0o755);
    chmodSync(tiny.modelPath, 0o644);
    const name = `bertha-image-test-${randomBytes(4).toString('hex')}`;
    onTestFinished(() => void podman(['rm', '--force', '--volumes', name]));
    podmanOk([
      'run',
      '--detach',
      '--name',
      name,
      // Nothing outside the container is needed: every check runs inside it.
      '--network',
      'none',
      // podman would start the HEALTHCHECK's timer through systemd, which these machines lack.
      '--health-interval',
      'disable',
      // As the Kubernetes pods run it: nothing writable but the volumes and /tmp, no capabilities.
      '--read-only',
      '--tmpfs',
      '/tmp',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges',
      '--volume',
      `${models}:/models:ro`,
      '--env',
      `BERTHA_MODEL=/models/${path.basename(tiny.modelPath)}`,
      '--env',
      'BERTHA_TRAINER_STARTER_ENABLED=false',
      image,
      'up',
    ]);

    // The image's own HEALTHCHECK (Node's fetch of /healthz), run inside the container.
    await until('the HEALTHCHECK passes', () => podman(['healthcheck', 'run', name]).status === 0, 120_000);
    const inspect = JSON.parse(podmanOk(['inspect', name]))[0];
    expect(inspect.Config.User).toBe(`${IMAGE_USER}:${IMAGE_USER}`);
    expect(inspect.Config.Healthcheck.Test.join(' ')).toContain('/healthz');
    expect(inspect.Mounts.map((mount: Loose) => mount.Destination).sort()).toEqual(['/data', '/models']);
    const status = podmanOk(['exec', name, 'cat', '/proc/1/status']);
    expect(/^Name:\s+(\S+)/m.exec(status)?.[1]).toBe('node');
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(IMAGE_USER);

    await until('the model is ready', () => answerInside(name, 'http://127.0.0.1:8080/readyz')?.status === 200, 60_000);
    const chat = answerInside(name, 'http://127.0.0.1:8080/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bertha', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }),
    });
    expect(chat?.status).toBe(200);
    expect(chat?.body.choices[0].message.content).toEqual(expect.stringMatching(/\S/));
    expect(chat?.body.model_version).toBe('local');

    const compilers = podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'sh',
      image,
      '-c',
      'for tool in gcc g++ cc make python3; do command -v "$tool"; done; echo searched',
    ]);
    expect(compilers.stdout.trim()).toBe('searched');

    podmanOk(['kill', '--signal', 'TERM', name]);
    expect(podmanOk(['wait', name])).toBe('0');
  }, 240_000);

  test('podman kube play runs the rendered serve Deployment and its /healthz answers', async () => {
    if (!toolsAvailable('kubectl') || !(await postgresAvailable()) || !(await natsAvailable())) return;
    const dir = tempDir();
    const render = spawnSync(
      process.execPath,
      [BIN, 'deploy', 'render', '--target', 'k8s', '-d', path.join(dir, 'data'), '-o', path.join(dir, 'k8s')].concat([
        '--image',
        image,
        '--repo-url',
        'https://git.example.com/ops/bertha-deploy.git',
      ]),
      { encoding: 'utf8', env: { ...process.env, BERTHA_LOG_LEVEL: 'warn' } },
    );
    expect(render.status, render.stderr).toBe(0);
    const kustomized = spawnSync('kubectl', ['kustomize', path.join(dir, 'k8s', 'overlays', 'dev')], {
      encoding: 'utf8',
    });
    expect(kustomized.status, kustomized.stderr).toBe(0);
    const objects: Loose[] = YAML.parseAllDocuments(kustomized.stdout).map((document) => document.toJS());
    const serve = objects.find((object) => object.kind === 'Deployment' && object.metadata.name === 'bertha-serve');
    const configMap = objects.find((object) => object.kind === 'ConfigMap');

    // What differs from a cluster, and only that: the pod shares this machine's network to reach
    // its PostgreSQL and NATS on loopback, so podman 4.3 must not publish the container port
    // (it refuses port mappings on the host network); the Secrets hold this run's own database
    // schema, stream, subjects and port.
    const pod = serve.spec.template.spec;
    for (const container of pod.containers) delete container.ports;
    const file = path.join(dir, 'serve.yaml');
    writeFileSync(file, [configMap, serve].map((object) => YAML.stringify(object)).join('---\n'));
    const port = await freePort();
    const schema = freshSchemaName();
    const { stream, subjectPrefix } = freshStream();
    const [container] = pod.containers;
    const secretName = container.envFrom[0].secretRef.name;
    const token = container.env.find((variable: Loose) => variable.valueFrom?.secretKeyRef)?.valueFrom.secretKeyRef;
    podmanSecret(dir, secretName, {
      BERTHA_DATABASE_URL: POSTGRES_TEST_URL,
      BERTHA_DATABASE_SCHEMA: schema,
      BERTHA_EVENTS_NATS_SERVERS: NATS_TEST_URL,
      BERTHA_EVENTS_NATS_STREAM: stream,
      BERTHA_EVENTS_NATS_SUBJECT_PREFIX: subjectPrefix,
      BERTHA_SERVER_PORT: String(port),
      BERTHA_HOST: '127.0.0.1',
    });
    podmanSecret(dir, token.name, { [token.key]: randomBytes(16).toString('hex') });

    const name = `${serve.metadata.name}-pod-0-${container.name}`;
    let volumes: string[] = [];
    // One cleanup, in order: the pod lets go of the schema and the stream before they are dropped.
    onTestFinished(async () => {
      podman(['kube', 'down', file]);
      for (const volume of volumes) podman(['volume', 'rm', '--force', volume]);
      for (const secret of [secretName, token.name]) podman(['secret', 'rm', secret]);
      await dropSchema(schema);
      await deleteStream(stream).catch(() => undefined);
    });
    podmanOk(['kube', 'play', '--network', 'host', file]);
    volumes = JSON.parse(podmanOk(['inspect', name]))[0]
      .Mounts.filter((mount: Loose) => mount.Type === 'volume')
      .map((mount: Loose) => mount.Name);

    await until(
      '/healthz answers',
      () => answerInside(name, `http://127.0.0.1:${port}/healthz`)?.status === 200,
      120_000,
    );
    const inspect = JSON.parse(podmanOk(['inspect', name]))[0];
    expect(inspect.Config.User).toBe(`${IMAGE_USER}:${IMAGE_USER}`);
    expect(inspect.HostConfig.ReadonlyRootfs).toBe(true);
    expect(inspect.HostConfig.CapAdd ?? []).toEqual([]);
    expect(inspect.Args).toEqual(['serve']);
    expect(podmanOk(['logs', name])).toContain('"role":"serve"');
  }, 240_000);
});
