import { describe, expect, onTestFinished, test } from 'vitest';
import {
  createLineageStore,
  type LineageGraph,
  lineageGraph,
  parseNodeRef,
  renderLineageTree,
} from '../../src/lineage/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { startLineageServer } from './server.ts';
import { DATASET, smallLoop, TRACKING_RUN } from './small-loop.ts';

test('an id says its kind by its prefix, or is given as <kind>/<id>', () => {
  expect(parseNodeRef('chatcmpl_01abc')).toEqual({ kind: 'answer', id: 'chatcmpl_01abc' });
  expect(parseNodeRef('fb_01abc')).toEqual({ kind: 'feedback', id: 'fb_01abc' });
  expect(parseNodeRef('bertha-chat/3')).toEqual({ kind: 'model-version', id: 'bertha-chat/3' });
  expect(parseNodeRef(DATASET)).toEqual({ kind: 'dataset', id: DATASET });
  expect(parseNodeRef('doc_01abc@9f86d081884c7d65')).toEqual({ kind: 'document', id: 'doc_01abc@9f86d081884c7d65' });
  expect(parseNodeRef('gate/evt_01abc')).toEqual({ kind: 'gate', id: 'evt_01abc' });
  expect(parseNodeRef('model-version/starter')).toEqual({ kind: 'model-version', id: 'starter' });
  expect(() => parseNodeRef('starter')).toThrow(/give it as <kind>\/<id>/);
});

test('the tree shows each direction under the root, and a node reached twice once in full', () => {
  const node = (kind: string, id: string, side: 'root' | 'upstream' | 'downstream', distance: number) => ({
    kind: kind as 'answer',
    id,
    key: `${kind}:${id}`,
    label: `the ${kind}`,
    details: {},
    side,
    distance,
  });
  const graph: LineageGraph = {
    root: 'answer:a',
    direction: 'both',
    depth: 8,
    truncated: false,
    nodes: [
      node('answer', 'a', 'root', 0),
      node('model-version', 'starter', 'upstream', 1),
      node('feedback', 'f', 'downstream', 1),
      node('dataset', 'd', 'downstream', 2),
      node('tracking-run', 't', 'downstream', 3),
      node('tracking-run', 'p', 'downstream', 3),
      node('model-version', 'm/1', 'downstream', 4),
    ],
    edges: [
      { from: 'model-version:starter', to: 'answer:a', relation: 'answered', recorded: false },
      { from: 'answer:a', to: 'feedback:f', relation: 'rated in', recorded: false },
      { from: 'feedback:f', to: 'dataset:d', relation: 'contributed to', recorded: true },
      { from: 'dataset:d', to: 'tracking-run:t', relation: 'trained', recorded: true },
      { from: 'dataset:d', to: 'tracking-run:p', relation: 'trained', recorded: true },
      { from: 'tracking-run:t', to: 'model-version:m/1', relation: 'registered', recorded: false },
      { from: 'tracking-run:p', to: 'model-version:m/1', relation: 'registered', recorded: false },
    ],
  };
  expect(renderLineageTree(graph)).toBe(
    [
      'answer a  the answer',
      'upstream: where it came from',
      '└─ answered ← model-version starter  the model-version',
      'downstream: what it led to',
      '└─ rated in → feedback f  the feedback',
      '   └─ contributed to → dataset d  the dataset',
      '      ├─ trained → tracking-run t  the tracking-run',
      '      │  └─ registered → model-version m/1  the model-version',
      '      └─ trained → tracking-run p  the tracking-run',
      '         └─ registered → model-version m/1  the model-version  (shown elsewhere)',
    ].join('\n'),
  );
});

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`lineage graph on ${factory.name}`, () => {
    async function setup() {
      const db = await factory.create();
      onTestFinished(() => db.close());
      return { db, loop: await smallLoop(db), server: await startLineageServer(db, tempDir()) };
    }

    test('both directions from a model version: back to the vote, on to its rollout; a recorded edge is stored once', async () => {
      const { db, loop } = await setup();
      const graph = await lineageGraph(
        { db, store: createLineageStore(db) },
        { kind: 'model-version', id: loop.version },
        { direction: 'both', depth: 8, maxNodes: 100 },
      );
      const sides = Object.fromEntries(graph.nodes.map((node) => [node.key, [node.side, node.distance]]));
      expect(sides).toMatchObject({
        [`model-version:${loop.version}`]: ['root', 0],
        [`tracking-run:${TRACKING_RUN}`]: ['upstream', 1],
        'model-version:starter': ['upstream', 1],
        [`dataset:${DATASET}`]: ['upstream', 2],
        [`feedback:${loop.feedbackId}`]: ['upstream', 3],
        [`answer:${loop.answerId}`]: ['upstream', 4],
        [`rollout:${loop.rolloutId}`]: ['downstream', 1],
      });
      const stored = await createLineageStore(db).edges({ kind: 'feedback', id: loop.feedbackId }, 'downstream', {
        limit: 10,
      });
      expect(stored).toHaveLength(1);
      expect(graph.nodes.find((node) => node.kind === 'rollout-decision')).toMatchObject({ status: 'start' });
      expect(graph.truncated).toBe(false);
    });

    test('the depth limit stops the walk, and the node cap cuts it and says so', async () => {
      const { loop, server } = await setup();
      const shallow = await server.get<LineageGraph>(
        `/v1/lineage/answer/${loop.answerId}?direction=downstream&depth=1`,
      );
      expect(shallow.body.nodes.map((node) => node.key).sort()).toEqual(
        [`answer:${loop.answerId}`, `feedback:${loop.feedbackId}`].sort(),
      );
      expect(shallow.body.truncated).toBe(false);
      const capped = await server.get<LineageGraph>(`/v1/lineage/answer/${loop.answerId}?maxNodes=3`);
      expect(capped.body.nodes).toHaveLength(3);
      expect(capped.body.truncated).toBe(true);
    });

    test('an unknown kind is a 400 and an unknown id a 404, in the JSON error shape', async () => {
      const { server } = await setup();
      const kind = await server.get<{ error: { code: string; message: string } }>('/v1/lineage/checkpoint/abc');
      expect(kind.status).toBe(400);
      expect(kind.body.error.code).toBe('lineage_kind_unknown');
      expect(kind.body.error.message).toMatch(/'checkpoint' is not a lineage kind/);
      const missing = await server.get<{ error: { code: string } }>('/v1/lineage/answer/chatcmpl_nope');
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('not_found');
      const depth = await server.get<{ error: { code: string } }>('/v1/lineage/answer/chatcmpl_nope?depth=0');
      expect(depth.status).toBe(400);
      expect(depth.body.error.code).toBe('invalid_request');
    });
  });
}
