import { describe, expect, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { ModelBundle } from '../../src/models/index.ts';
import { followAlias } from '../../src/tracking/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { startTrackingServer } from './harness.ts';

const bundle = (path: string) => ({
  base: { kind: 'gguf', path },
  systemPrompt: 'Answer from {context}.',
  eval: { gold_accuracy: 0.82 },
  lineage: { trainingDataSnapshot: 'datasets/feedback-2026-11-24.jsonl', parentVersion: 'bertha-chat/1' },
});

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`MLflow model registry API on ${factory.name}`, () => {
    test('registered models are created, found, described, tagged, searched, renamed and deleted', async () => {
      const { api } = await startTrackingServer(factory);
      const created = await api('POST', 'registered-models/create', {
        name: 'chat',
        description: 'the chatbot',
        tags: [{ key: 'owner', value: 'ml' }],
      });
      expect(created.body.registered_model).toMatchObject({
        name: 'chat',
        description: 'the chatbot',
        tags: [{ key: 'owner', value: 'ml' }],
        aliases: [],
      });
      expect(await api('POST', 'registered-models/create', { name: 'chat' })).toMatchObject({
        status: 400,
        body: { error_code: 'RESOURCE_ALREADY_EXISTS' },
      });
      await api('POST', 'registered-models/create', { name: 'embedder' });
      expect(
        (await api('PATCH', 'registered-models/update', { name: 'chat', description: 'v2' })).body.registered_model
          .description,
      ).toBe('v2');
      await api('POST', 'registered-models/set-tag', { name: 'chat', key: 'tier', value: 'gold' });
      await api('DELETE', 'registered-models/delete-tag', { name: 'chat', key: 'owner' });
      expect((await api('GET', 'registered-models/get', { name: 'chat' })).body.registered_model.tags).toEqual([
        { key: 'tier', value: 'gold' },
      ]);

      const search = await api('GET', 'registered-models/search', { filter: "name LIKE 'ch%'" });
      expect(search.body.registered_models.map((m: { name: string }) => m.name)).toEqual(['chat']);
      const byTag = await api('GET', 'registered-models/search', { filter: "tags.tier = 'gold'" });
      expect(byTag.body.registered_models).toHaveLength(1);
      const paged = await api('GET', 'registered-models/search', { max_results: 1, order_by: 'name DESC' });
      expect(paged.body.registered_models[0].name).toBe('embedder');
      const next = await api('GET', 'registered-models/search', {
        max_results: 1,
        order_by: 'name DESC',
        page_token: paged.body.next_page_token,
      });
      expect(next.body.registered_models[0].name).toBe('chat');
      expect(next.body.next_page_token).toBeUndefined();

      await api('POST', 'model-versions/create', { name: 'chat', source: 'models/a.gguf' });
      const renamed = await api('POST', 'registered-models/rename', { name: 'chat', new_name: 'bertha-chat' });
      expect(renamed.body.registered_model.latest_versions).toMatchObject([{ name: 'bertha-chat', version: '1' }]);
      expect(await api('GET', 'registered-models/get', { name: 'chat' })).toMatchObject({
        status: 404,
        body: { error_code: 'RESOURCE_DOES_NOT_EXIST' },
      });
      expect(
        await api('POST', 'registered-models/rename', { name: 'bertha-chat', new_name: 'embedder' }),
      ).toMatchObject({
        status: 400,
        body: { error_code: 'RESOURCE_ALREADY_EXISTS' },
      });
      expect((await api('DELETE', 'registered-models/delete', { name: 'bertha-chat' })).status).toBe(200);
      expect(await api('GET', 'model-versions/get', { name: 'bertha-chat', version: '1' })).toMatchObject({
        status: 404,
      });
    });

    test('model versions number themselves, carry tags and stages, and are searched and deleted', async () => {
      const { api } = await startTrackingServer(factory);
      const runId = (await api('POST', 'runs/create', { experiment_id: '0' })).body.run.info.run_id;
      await api('POST', 'registered-models/create', { name: 'chat' });
      expect(await api('POST', 'model-versions/create', { name: 'missing', source: 's' })).toMatchObject({
        status: 404,
      });
      const versions = await Promise.all(
        [1, 2, 3].map((i) =>
          api('POST', 'model-versions/create', {
            name: 'chat',
            source: `models/${i}.gguf`,
            run_id: runId,
            description: `v${i}`,
          }),
        ),
      );
      expect(versions.map((v) => v.body.model_version.version).sort()).toEqual(['1', '2', '3']);
      expect(versions[0]?.body.model_version).toMatchObject({
        current_stage: 'None',
        status: 'READY',
        run_id: runId,
        aliases: [],
        tags: [],
      });

      await api('POST', 'model-versions/set-tag', { name: 'chat', version: '2', key: 'gate', value: 'passed' });
      await api('POST', 'model-versions/set-tag', { name: 'chat', version: '2', key: 'tmp', value: 'x' });
      await api('DELETE', 'model-versions/delete-tag', { name: 'chat', version: '2', key: 'tmp' });
      expect(
        (await api('PATCH', 'model-versions/update', { name: 'chat', version: '2', description: 'better' })).body
          .model_version,
      ).toMatchObject({
        description: 'better',
        tags: [{ key: 'gate', value: 'passed' }],
      });

      await api('POST', 'model-versions/transition-stage', {
        name: 'chat',
        version: '1',
        stage: 'production',
        archive_existing_versions: false,
      });
      const promoted = await api('POST', 'model-versions/transition-stage', {
        name: 'chat',
        version: '2',
        stage: 'Production',
        archive_existing_versions: true,
      });
      expect(promoted.body.model_version.current_stage).toBe('Production');
      expect(
        (await api('GET', 'model-versions/get', { name: 'chat', version: '1' })).body.model_version.current_stage,
      ).toBe('Archived');
      expect(
        await api('POST', 'model-versions/transition-stage', { name: 'chat', version: '3', stage: 'Live' }),
      ).toMatchObject({
        status: 400,
        body: { error_code: 'INVALID_PARAMETER_VALUE' },
      });
      const latest = await api('POST', 'registered-models/get-latest-versions', {
        name: 'chat',
        stages: ['Production'],
      });
      expect(latest.body.model_versions.map((v: { version: string }) => v.version)).toEqual(['2']);

      const byRun = await api('GET', 'model-versions/search', {
        filter: `run_id = '${runId}'`,
        order_by: 'version_number ASC',
      });
      expect(byRun.body.model_versions.map((v: { version: string }) => v.version)).toEqual(['1', '2', '3']);
      const byTag = await api('GET', 'model-versions/search', { filter: "name = 'chat' AND tags.gate = 'passed'" });
      expect(byTag.body.model_versions.map((v: { version: string }) => v.version)).toEqual(['2']);
      expect(await api('GET', 'model-versions/search', { filter: "colour = 'red'" })).toMatchObject({ status: 400 });
      // The three creates raced, so which source got which number is up to the database.
      const third = versions.find((v) => v.body.model_version.version === '3')?.body.model_version.source;
      expect((await api('GET', 'model-versions/get-download-uri', { name: 'chat', version: '3' })).body).toEqual({
        artifact_uri: third,
      });

      expect((await api('DELETE', 'model-versions/delete', { name: 'chat', version: '3' })).status).toBe(200);
      expect(await api('GET', 'model-versions/get', { name: 'chat', version: '3' })).toMatchObject({
        status: 404,
        body: { error_code: 'RESOURCE_DOES_NOT_EXIST' },
      });
      expect(
        (await api('POST', 'model-versions/create', { name: 'chat', source: 'models/4.gguf' })).body.model_version
          .version,
      ).toBe('3');
    });

    test('moving an alias publishes model.alias_changed and resolves to the version bundle', async () => {
      const { api, registry, events, url } = await startTrackingServer(factory);
      await api('POST', 'registered-models/create', { name: 'bertha-chat' });
      const v1 = await registry.registerBundle({ name: 'bertha-chat', bundle: bundle('models/base.gguf') as never });
      const v2 = await api('POST', 'model-versions/create', {
        name: 'bertha-chat',
        source: 'mlflow-artifacts:/0/run/artifacts/model',
        tags: [{ key: 'bertha.bundle', value: JSON.stringify(bundle('models/tuned.gguf')) }],
      });
      expect(
        await api('POST', 'model-versions/create', {
          name: 'bertha-chat',
          source: 's',
          tags: [{ key: 'bertha.bundle', value: '{"base":{"kind":"onnx"}}' }],
        }),
      ).toMatchObject({ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE' } });

      expect(await registry.resolveAlias('bertha-chat', 'champion')).toBeUndefined();
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: v1.version });
      await api('POST', 'registered-models/alias', {
        name: 'bertha-chat',
        alias: 'challenger',
        version: v2.body.model_version.version,
      });
      const champion = await registry.resolveAlias('bertha-chat', 'champion');
      expect(champion).toMatchObject({
        version: 'bertha-chat/1',
        base: { kind: 'gguf', path: 'models/base.gguf' },
        eval: { gold_accuracy: 0.82 },
      });
      expect((await registry.resolveAlias('bertha-chat', 'challenger'))?.base).toEqual({
        kind: 'gguf',
        path: 'models/tuned.gguf',
      });
      const overHttp = await fetch(`${url}/v1/models/bertha-chat/aliases/champion/bundle`);
      expect(((await overHttp.json()) as { version: string }).version).toBe('bertha-chat/1');

      const byAlias = await api('GET', 'registered-models/alias', { name: 'bertha-chat', alias: 'challenger' });
      expect(byAlias.body.model_version).toMatchObject({ version: '2', aliases: ['challenger'] });
      const model = (await api('GET', 'registered-models/get', { name: 'bertha-chat' })).body.registered_model;
      expect(model.aliases).toEqual([
        { alias: 'challenger', version: '2' },
        { alias: 'champion', version: '1' },
      ]);

      // Promotion: the challenger becomes champion.
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '2' });
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '2' });
      expect((await registry.resolveAlias('bertha-chat', 'champion'))?.version).toBe('bertha-chat/2');
      await api('DELETE', 'registered-models/alias', { name: 'bertha-chat', alias: 'challenger' });
      expect(await api('GET', 'registered-models/alias', { name: 'bertha-chat', alias: 'challenger' })).toMatchObject({
        status: 404,
        body: { error_code: 'RESOURCE_DOES_NOT_EXIST' },
      });
      await api('DELETE', 'model-versions/delete', { name: 'bertha-chat', version: '2' });
      expect(await registry.resolveAlias('bertha-chat', 'champion')).toBeUndefined();

      expect(events.map((event) => event.payload)).toEqual([
        { name: 'bertha-chat', alias: 'champion', version: '1', previous: null },
        { name: 'bertha-chat', alias: 'challenger', version: '2', previous: null },
        { name: 'bertha-chat', alias: 'champion', version: '2', previous: '1' },
        { name: 'bertha-chat', alias: 'challenger', version: null, previous: '2' },
        { name: 'bertha-chat', alias: 'champion', version: null, previous: '2' },
      ]);

      for (const alias of ['latest', 'v3', 'bad alias']) {
        expect(
          await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias, version: '1' }),
          alias,
        ).toMatchObject({
          status: 400,
          body: { error_code: 'INVALID_PARAMETER_VALUE' },
        });
      }
      expect(
        await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '42' }),
      ).toMatchObject({ status: 404 });
    });

    test('a follower of the champion gets the bundle at start and after every move, and keeps the old one on a bad move', async () => {
      const { api, registry, bus } = await startTrackingServer(factory);
      await registry.registerBundle({ name: 'bertha-chat', bundle: bundle('models/base.gguf') as never });
      await registry.registerBundle({ name: 'bertha-chat', bundle: bundle('models/tuned.gguf') as never });
      await api('POST', 'model-versions/create', { name: 'bertha-chat', source: 'models/no-bundle.gguf' });
      await registry.setAlias('bertha-chat', 'champion', '1');
      const served: ModelBundle[] = [];
      const follower = followAlias({
        registry,
        bus,
        logger: createLogger('silent'),
        model: 'bertha-chat',
        alias: 'champion',
        onBundle: async (next) => {
          served.push(next);
        },
      });
      await follower.started;
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'challenger', version: '2' });
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '2' });
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '3' });
      await bus.drain();
      follower.stop();
      await api('POST', 'registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '1' });
      await bus.drain();
      expect(served.map((item) => item.version)).toEqual(['bertha-chat/1', 'bertha-chat/2']);
    });
  });
}
