import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import type { GraphEdge, LineageGraph, OpenLineageRunEvent } from '../../src/lineage/index.ts';
import { OPENLINEAGE_SCHEMA_URL, pipelineRunUuid } from '../../src/lineage/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { runLoopOnce } from './loop.ts';
import { bertha, startLineageServer } from './server.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The edge between two nodes, whichever relation, or undefined. */
function edgeOf(graph: LineageGraph, from: string, to: string): GraphEdge | undefined {
  return graph.edges.find((edge) => edge.from === from && edge.to === to);
}

function nodesOf(graph: LineageGraph, kind: string): string[] {
  return graph.nodes.filter((node) => node.kind === kind).map((node) => node.id);
}

/** The OpenLineage run event fields the spec requires (OpenLineage.json 2-0-2, RunEvent, Run, Job, Dataset). */
function requiredFieldProblems(event: OpenLineageRunEvent): string[] {
  const problems: string[] = [];
  if (!['START', 'RUNNING', 'COMPLETE', 'ABORT', 'FAIL', 'OTHER'].includes(event.eventType)) problems.push('eventType');
  if (Number.isNaN(Date.parse(event.eventTime)) || !event.eventTime.endsWith('Z')) problems.push('eventTime');
  if (!UUID.test(event.run?.runId ?? '')) problems.push('run.runId');
  if (!event.job?.namespace || !event.job?.name) problems.push('job');
  for (const dataset of [...(event.inputs ?? []), ...(event.outputs ?? [])]) {
    if (!dataset.namespace || !dataset.name) problems.push(`dataset ${JSON.stringify(dataset)}`);
  }
  if (!Array.isArray(event.inputs) || !Array.isArray(event.outputs)) problems.push('inputs/outputs');
  if (!/^[a-z][a-z0-9+.-]*:\/\/?\S+$/.test(event.producer ?? '')) problems.push('producer');
  if (event.schemaURL !== OPENLINEAGE_SCHEMA_URL) problems.push('schemaURL');
  return problems;
}

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`lineage of one loop on ${factory.name}`, () => {
    test('a thumbs-down traces through its dataset, training run, model version, gate and rollout, and back; every step reported START then COMPLETE', async () => {
      const loop = await runLoopOnce(factory);
      expect(loop.retraining.status, loop.retraining.error ?? '').toBe('succeeded');
      const server = await startLineageServer(loop.db, loop.dataDir);
      const { answerId, feedbackId } = loop.thumbsDown;
      const challenger = loop.rollout.challengerVersion;

      // Downstream from the answer: every hop of the chain, as rows and recorded edges.
      const down = await server.get<LineageGraph>(`/v1/lineage/answer/${answerId}?direction=downstream`);
      expect(down.status).toBe(200);
      const graph = down.body;
      const [dataset] = nodesOf(graph, 'dataset');
      const [gate] = nodesOf(graph, 'gate');
      expect(dataset).toMatch(/^[0-9a-f]{16}$/);
      expect(edgeOf(graph, `answer:${answerId}`, `feedback:${feedbackId}`)).toMatchObject({ relation: 'rated in' });
      const contributed = edgeOf(graph, `feedback:${feedbackId}`, `dataset:${dataset}`);
      expect(contributed).toMatchObject({ relation: 'contributed to', recorded: true });
      expect(contributed?.attributes).toMatchObject({ split: 'negatives', role: 'negative' });
      // The row exactly as the dataset holds it, by content hash.
      const objects = createFsObjectStore({ root: path.join(loop.dataDir, 'objects') });
      const negatives = (await readObject(objects, `datasets/${dataset}/negatives.jsonl`)).toString().split('\n');
      const line = negatives.find((candidate) => candidate.includes(`"id":"${feedbackId}"`)) as string;
      expect(contributed?.attributes?.contentHash).toBe(createHash('sha256').update(line).digest('hex'));
      const trainingRun = graph.edges.find(
        (edge) => edge.from === `dataset:${dataset}` && edgeOf(graph, edge.to, `model-version:${challenger}`),
      );
      expect(trainingRun).toMatchObject({ relation: 'trained', recorded: true });
      expect(trainingRun?.to).toMatch(/^tracking-run:[0-9a-f]{32}$/);
      expect(edgeOf(graph, trainingRun?.to as string, `model-version:${challenger}`)).toMatchObject({
        relation: 'registered',
        recorded: false,
      });
      expect(edgeOf(graph, `model-version:${challenger}`, `gate:${gate}`)?.attributes).toMatchObject({ chosen: true });
      expect(edgeOf(graph, `gate:${gate}`, `rollout:${loop.rollout.id}`)).toMatchObject({ relation: 'started' });
      const decisions = graph.nodes.filter((node) => node.kind === 'rollout-decision').map((node) => node.status);
      expect(decisions).toEqual(['start', 'rollback']);
      expect(graph.nodes.find((node) => node.kind === 'rollout')?.status).toBe('rolled_back');

      // Upstream from the model version: back to the vote and the answer it was on.
      const up = (await server.get<LineageGraph>(`/v1/lineage/model-version/${challenger}?direction=upstream`)).body;
      expect(up.nodes.find((node) => node.key === `feedback:${feedbackId}`)).toMatchObject({ side: 'upstream' });
      expect(edgeOf(up, `answer:${answerId}`, `feedback:${feedbackId}`)).toBeDefined();
      expect(edgeOf(up, `run:${loop.retraining.id}`, `dataset:${dataset}`)).toMatchObject({ relation: 'built' });

      // Upstream from the answer: the passage, its document version, the ingestion run, its trigger and the upload.
      const source = (await server.get<LineageGraph>(`/v1/lineage/answer/${answerId}?direction=upstream`)).body;
      const document = `document:${loop.upload.documentId}@${loop.upload.version}`;
      expect(edgeOf(source, `chunk:${loop.upload.chunkId}`, `answer:${answerId}`)).toMatchObject({
        relation: 'grounded',
      });
      expect(edgeOf(source, document, `chunk:${loop.upload.chunkId}`)).toMatchObject({ relation: 'split into' });
      expect(edgeOf(source, `run:${loop.upload.ingestion.id}`, document)).toMatchObject({ relation: 'ingested' });
      const [trigger] = nodesOf(source, 'trigger');
      expect(edgeOf(source, `trigger:${trigger}`, `run:${loop.upload.ingestion.id}`)).toBeDefined();
      expect(edgeOf(source, `event:${loop.upload.eventId}`, `trigger:${trigger}`)).toBeDefined();
      expect(edgeOf(source, 'model-version:starter', `answer:${answerId}`)).toMatchObject({ relation: 'answered' });

      // The depth limit: two edges from the answer reach the dataset, not the training run.
      const shallow = (await server.get<LineageGraph>(`/v1/lineage/answer/${answerId}?direction=downstream&depth=2`))
        .body;
      expect(Math.max(...shallow.nodes.map((node) => node.distance))).toBe(2);
      expect(nodesOf(shallow, 'dataset')).toEqual([dataset]);
      expect(nodesOf(shallow, 'tracking-run')).toEqual([]);

      // OpenLineage: every event of both runs has the required fields; each step START then COMPLETE.
      for (const run of [loop.retraining, loop.upload.ingestion]) {
        const exported = await server.get<undefined>(`/v1/lineage/openlineage?run=${run.id}`);
        const events = exported.text
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as OpenLineageRunEvent);
        for (const event of events) expect(requiredFieldProblems(event), JSON.stringify(event)).toEqual([]);
        const ran = (
          await loop.db.kysely
            .selectFrom('pipeline_steps')
            .select('name')
            .where('run_id', '=', run.id)
            .where('status', '=', 'succeeded')
            .execute()
        ).map((step) => step.name);
        expect(ran.length).toBeGreaterThan(0);
        for (const step of ran) {
          const own = events.filter((event) => event.job.name === `${run.pipeline}.${step}`);
          expect(
            own.map((event) => event.eventType),
            step,
          ).toEqual(['START', 'COMPLETE']);
          expect(own[0]?.run.runId).toBe(own[1]?.run.runId);
          expect(own[1]?.run.facets.parent).toMatchObject({
            run: { runId: pipelineRunUuid(run.id) },
            job: { name: run.pipeline },
          });
        }
      }
      const retrainingEvents = (await server.get<undefined>(`/v1/lineage/openlineage?run=${loop.retraining.id}`)).text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as OpenLineageRunEvent);
      const completed = (step: string) =>
        retrainingEvents.find((event) => event.job.name === `llm-retraining.${step}` && event.eventType === 'COMPLETE');
      expect(completed('build-dataset')?.inputs.map((input) => input.name)).toContain('feedback');
      expect(completed('build-dataset')?.outputs.map((output) => output.name)).toContain(`dataset/${dataset}`);
      expect(completed('deploy')?.outputs.map((output) => output.name)).toContain(`rollout/${loop.rollout.id}`);
      expect(completed('log-model')?.job.namespace).toMatch(/^bertha:\/\//);

      // The CLI: the same walk as a tree, and the export as a file of JSON lines.
      const cli = await bertha(['lineage', answerId, '--direction', 'downstream'], {
        dataDir: loop.dataDir,
        port: server.port,
      });
      expect(cli.code, cli.stderr).toBe(0);

      expect(cli.stdout).toMatch(new RegExp(`^answer ${answerId} `));
      expect(cli.stdout).toContain('downstream: what it led to');
      expect(cli.stdout).toMatch(new RegExp(`└─ rated in → feedback ${feedbackId} +thumbs down by user-down`));
      expect(cli.stdout).toMatch(new RegExp(`contributed to → dataset ${dataset}`));
      expect(cli.stdout).toMatch(new RegExp(`started → rollout ${loop.rollout.id}`));
      const out = path.join(tempDir(), 'lineage.jsonl');
      const exported = await bertha(['lineage', 'export', '--run', loop.retraining.id, '-o', out], {
        dataDir: loop.dataDir,
        port: server.port,
      });
      expect(exported.code, exported.stderr).toBe(0);
      expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(retrainingEvents.length);
    }, 400_000);
  });
}
