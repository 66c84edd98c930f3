import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { type Bertha, createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import {
  createRolloutController,
  createRolloutStore,
  ROLLOUT_CHANGED,
  type RolloutController,
  type RolloutStore,
} from '../../src/rollout/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';

const MODEL = 'bertha-chat';

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `bertha <args>` as a user runs it, against the test's data dir and (unless told) its server's port. */
function bertha(
  setup: Pick<Setup, 'dataDir' | 'port'>,
  args: string[],
  port = setup.port,
  env: Record<string, string> = {},
): Promise<Cli> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [path.resolve('bin/bertha.js'), ...args, '--data-dir', setup.dataDir, '--port', port, '--set', 'log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Setup {
  bertha: Bertha;
  dataDir: string;
  port: string;
  store: RolloutStore;
  /** The controller `bertha up` runs, here looked through by hand (the server's loop is off). */
  controller: RolloutController;
}

/**
 * A Bertha server that serves no chat (no model loads), with two registered versions, version
 * 1 champion and version 2 judged by the gate; canaries go through 10% then 50%.
 */
async function setUp(): Promise<Setup> {
  const dataDir = tempDir();
  const { config } = loadConfig({ dataDir, port: 0, set: ['log.level=silent', 'pipelines.runner=false'] }, {});
  const server = await createBertha(config, { serveChat: false });
  onTestFinished(() => server.close());
  await server.listen();
  for (const n of [1, 2]) {
    await server.registry.registerBundle({
      name: MODEL,
      bundle: {
        base: { kind: 'gguf', path: path.join(dataDir, `v${n}.gguf`) },
        adapters: [],
        generation: {},
        retrieval: { enabled: true, topK: 4 },
      },
    });
  }
  await server.registry.setAlias(MODEL, 'champion', '1');
  await server.registry.store.setModelVersionTag(MODEL, '2', { key: 'bertha.gate.decision', value: 'promote' });
  await server.registry.store.setModelVersionTag(MODEL, '2', {
    key: 'bertha.gate.reasons',
    value: 'benchmark-domain improved by 0.12 [0.05, 0.19]',
  });
  const store = createRolloutStore(server.db);
  const controller = createRolloutController({
    store,
    bus: server.bus,
    logger: createLogger('silent'),
    model: MODEL,
    promote: async (version) => {
      await server.registry.setAlias(MODEL, 'champion', version.slice(version.lastIndexOf('/') + 1));
    },
    steps: [0.1, 0.5],
    policy: { minVotes: 4, minAnswers: 4, confidence: 0.9, downRateTolerance: 0.3, errorRateTolerance: 0.3 },
  });
  return { bertha: server, dataDir, port: new URL(server.url ?? '').port, store, controller };
}

/** Answers of a version, each voted on. */
async function votesIn(db: MetadataDb, version: string, up: number, down: number): Promise<void> {
  const feedback = createFeedbackStore(db);
  for (let i = 0; i < up + down; i++) {
    const answer = await insertAnswer(db, { modelVersion: version });
    await feedback.record({ responseId: answer, userId: `u${i}`, rating: i < up ? 'up' : 'down' });
  }
  // Timestamps have millisecond resolution: a step that begins next starts strictly after these.
  const last = Date.now();
  while (Date.now() === last) {}
}

function votes(setup: Setup, version: string, up: number, down: number): Promise<void> {
  return votesIn(setup.bertha.db, version, up, down);
}

async function champion(setup: Setup): Promise<string | undefined> {
  return (await setup.bertha.registry.resolveAlias(MODEL, 'champion'))?.version;
}

test('`bertha rollout status` shows both versions, the share, both arms and every decision; an unknown id fails; `models rollback` ends the running canary', async () => {
  const setup = await setUp();

  const started = await bertha(setup, ['rollout', 'start', '2', '--champion', '1', '--reason', 'canary by hand']);
  expect(started.code, started.stderr).toBe(0);
  const id = /^(rol_\w+): bertha-chat\/2 serves 10% of conversations, bertha-chat\/1 the rest$/m.exec(
    started.stdout,
  )?.[1];
  expect(id, started.stdout).toBeDefined();

  // Too few votes: a wait; then enough, no worse: step up to 50%; then this step's first votes.
  await votes(setup, `${MODEL}/1`, 1, 1);
  await votes(setup, `${MODEL}/2`, 2, 0);
  expect((await setup.controller.tick())?.verdict).toBe('wait');
  await votes(setup, `${MODEL}/1`, 8, 2);
  await votes(setup, `${MODEL}/2`, 9, 1);
  expect((await setup.controller.tick())?.verdict).toBe('advance');
  await votes(setup, `${MODEL}/1`, 3, 1);
  await votes(setup, `${MODEL}/2`, 2, 2);

  const status = await bertha(setup, ['rollout', 'status']);
  expect(status.code, status.stderr).toBe(0);
  const out = status.stdout;
  expect(out).toContain(`Rollout     ${id} (bertha-chat)`);
  expect(out).toContain('the challenger serves 50% of conversations');
  expect(out).toMatch(/^Share\s+50%$/m);
  expect(out).toMatch(/^Champion\s+bertha-chat\/1$/m);
  expect(out).toMatch(/^Challenger\s+bertha-chat\/2$/m);
  // The arms since the 50% step began: answers, errors, votes and rates.
  expect(out).toMatch(/^champion\s+bertha-chat\/1\s+4\s+0\s+0%\s+3\s+1\s+25%$/m);
  expect(out).toMatch(/^challenger\s+bertha-chat\/2\s+4\s+0\s+0%\s+2\s+2\s+50%$/m);
  // Decisions in order, with their shares, reasons and the evidence they were taken on.
  const decisions = out.slice(out.indexOf('Decisions:'));
  expect(decisions).toMatch(/start\s+0% -> 10%\s+canary by hand/);
  expect(decisions).toMatch(/wait\s+10%\s+inconclusive: 2 votes on bertha-chat\/1 and 2 on bertha-chat\/2/);
  expect(decisions).toMatch(/step\s+10% -> 50%\s+bertha-chat\/2 is no worse than bertha-chat\/1/);
  expect(decisions).toContain('champion bertha-chat/1: 12 answers, 0 failed, 9 up, 3 down');
  expect(decisions).toContain('challenger bertha-chat/2: 12 answers, 0 failed, 11 up, 1 down');
  expect(decisions).toMatch(/P\(thumbs-down worse\) [\d.]+%, P\(errors worse\) [\d.]+%/);
  expect(decisions.indexOf('start')).toBeLessThan(decisions.indexOf('wait'));
  expect(decisions.indexOf('wait')).toBeLessThan(decisions.indexOf('step'));

  const json = await bertha(setup, ['rollout', 'status', id ?? '', '--json']);
  expect(json.code, json.stderr).toBe(0);
  expect(JSON.parse(json.stdout)).toMatchObject({
    id,
    status: 'running',
    share: 0.5,
    champion_version: 'bertha-chat/1',
    challenger_version: 'bertha-chat/2',
    arms: { live: true, champion: { up: 3, down: 1 }, challenger: { up: 2, down: 2 } },
    decisions: [{ kind: 'start' }, { kind: 'wait' }, { kind: 'step', share_before: 0.1, share_after: 0.5 }],
  });

  // Port 0: no server to reach, so an in-process Bertha on the same database answers.
  const unknown = await bertha(setup, ['rollout', 'status', 'rol_nope'], '0');
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain("bertha: rollout 'rol_nope' does not exist");

  const rolledBack = await bertha(setup, ['models', 'rollback', '--reason', 'operators saw complaints']);
  expect(rolledBack.code, rolledBack.stderr).toBe(0);
  expect(rolledBack.stdout).toBe(
    `bertha-chat: canary ${id} rolled back (bertha-chat/2 served 50%); bertha-chat/1 serves every conversation\n`,
  );
  expect(await setup.store.get(id ?? '')).toMatchObject({ status: 'rolled_back', share: 0 });
  const last = (await setup.store.decisions(id ?? '')).at(-1);
  expect(last).toMatchObject({
    kind: 'rollback',
    reason: 'operators saw complaints',
    shareBefore: 0.5,
    shareAfter: 0,
    evidence: { manual: true, champion: { up: 3, down: 1 }, challenger: { up: 2, down: 2 } },
  });
  expect(await champion(setup)).toBe('bertha-chat/1');
}, 600_000);

test('`bertha models` shows gate decisions and aliases; `models rollback` moves champion back past the promotion and records it', async () => {
  const setup = await setUp();
  const rollout = await setup.controller.start(`${MODEL}/1`, `${MODEL}/2`, 'gate promoted bertha-chat/2');
  for (const _step of [0.1, 0.5]) {
    await votes(setup, `${MODEL}/1`, 8, 2);
    await votes(setup, `${MODEL}/2`, 9, 1);
    expect((await setup.controller.tick())?.verdict).toBe('advance');
  }
  expect(await setup.store.get(rollout.id)).toMatchObject({ status: 'promoted' });
  expect(await champion(setup)).toBe('bertha-chat/2');

  const listed = await bertha(setup, ['models']);
  expect(listed.code, listed.stderr).toBe(0);
  const lines = listed.stdout.split('\n');
  expect(lines[1]).toMatch(/^VERSION\s+ALIASES\s+GATE\s+STAGE\s+CREATED\s+RUN$/);
  expect(lines[2]).toMatch(/^2\s+champion\s+promote\s+None\s/);
  expect(lines[3]).toMatch(/^1\s+-\s+-\s+None\s/);
  expect(listed.stdout).toContain('gate reasons:\n  2  promote: benchmark-domain improved by 0.12 [0.05, 0.19]\n');

  const rolledBack = await bertha(setup, ['models', 'rollback', '--reason', 'answers got worse after promotion']);
  expect(rolledBack.code, rolledBack.stderr).toBe(0);
  expect(rolledBack.stdout).toBe(
    `bertha-chat: champion bertha-chat/2 -> bertha-chat/1 (the promotion by rollout ${rollout.id} is rolled back)\n`,
  );
  expect(await champion(setup)).toBe('bertha-chat/1');
  expect(await setup.store.get(rollout.id)).toMatchObject({ status: 'rolled_back', share: 0 });
  const decisions = await setup.store.decisions(rollout.id);
  expect(decisions.map((decision) => decision.kind)).toEqual(['start', 'step', 'promote', 'rollback']);
  expect(decisions.at(-1)).toMatchObject({
    reason: 'answers got worse after promotion',
    shareBefore: 1,
    shareAfter: 0,
    evidence: { manual: true, revertedPromotion: true, from: 'bertha-chat/2', to: 'bertha-chat/1' },
  });
  const [event] = await setup.bertha.bus.list({ type: ROLLOUT_CHANGED });
  expect(event?.payload).toMatchObject({ rolloutId: rollout.id, kind: 'rollback', status: 'rolled_back' });

  // Version 1 became champion without a rollout: there is no promotion left to roll back.
  const again = await bertha(setup, ['models', 'rollback']);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain("bertha: rollout that promoted 'bertha-chat/1' does not exist");
  expect(await champion(setup)).toBe('bertha-chat/1');
}, 600_000);

// What `bertha models rollback` asks of the controller, on every metadata database.
for (const factory of dbFactories) {
  describe.skipIf(!(await factory.available()))(`rolling back a promotion by hand on ${factory.name}`, () => {
    test('the champion goes back to the version the promotion replaced, once; refused while a canary runs or with no registry version to go back to', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const store = createRolloutStore(db);
      const moves: string[] = [];
      const controller = createRolloutController({
        store,
        bus: createLocalEventBus({ db, logger: createLogger('silent') }),
        logger: createLogger('silent'),
        model: MODEL,
        promote: async (version) => {
          moves.push(version);
        },
        steps: [0.5],
        policy: { minVotes: 4, minAnswers: 4, confidence: 0.9, downRateTolerance: 0.3, errorRateTolerance: 0.3 },
      });
      async function promote(champion: string, challenger: string) {
        const rollout = await controller.start(champion, challenger, 'gate promoted');
        await votesIn(db, champion, 8, 2);
        await votesIn(db, challenger, 9, 1);
        expect((await controller.tick())?.verdict).toBe('advance');
        return rollout;
      }

      const first = await promote(`${MODEL}/1`, `${MODEL}/2`);
      expect(moves).toEqual([`${MODEL}/2`]);
      await votesIn(db, `${MODEL}/2`, 1, 3);
      await controller.start(`${MODEL}/2`, `${MODEL}/3`, 'another canary');
      await expect(controller.revertPromotion(`${MODEL}/2`, 'too early')).rejects.toMatchObject({ code: 'conflict' });
      await controller.rollback('not now');

      const reverted = await controller.revertPromotion(`${MODEL}/2`, 'answers got worse');
      expect(moves).toEqual([`${MODEL}/2`, `${MODEL}/1`]);
      expect(reverted).toMatchObject({ id: first.id, status: 'rolled_back', share: 0, reason: 'answers got worse' });
      expect((await store.decisions(first.id)).at(-1)).toMatchObject({
        kind: 'rollback',
        shareBefore: 1,
        shareAfter: 0,
        evidence: {
          manual: true,
          revertedPromotion: true,
          from: `${MODEL}/2`,
          to: `${MODEL}/1`,
          sincePromotion: { version: `${MODEL}/2`, up: 1, down: 3 },
        },
      });
      await expect(controller.revertPromotion(`${MODEL}/2`, 'again')).rejects.toMatchObject({ code: 'not_found' });

      // A canary against the configured model: the alias has nothing in the registry to go back to.
      await promote('local', `${MODEL}/4`);
      await expect(controller.revertPromotion(`${MODEL}/4`, 'back')).rejects.toMatchObject({
        code: 'conflict',
        message: expect.stringContaining('local, which is not a version of bertha-chat in the registry'),
      });
      expect(moves).toEqual([`${MODEL}/2`, `${MODEL}/1`, `${MODEL}/4`]);
    });
  });
}

test('with auth enabled the CLI sends the key in BERTHA_API_KEY, and without one says how to get one', async () => {
  const dataDir = tempDir();
  const { config } = loadConfig(
    { dataDir, port: 0, set: ['log.level=silent', 'pipelines.runner=false', 'auth.enabled=true'] },
    {},
  );
  const server = await createBertha(config, { serveChat: false });
  onTestFinished(() => server.close());
  await server.listen();
  const target = { dataDir, port: new URL(server.url ?? '').port };
  const { key } = await server.apiKeys.create({ name: 'cli', role: 'admin' });

  const refused = await bertha(target, ['rollout', 'list'], target.port, { BERTHA_API_KEY: '' });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('an API key is required');
  expect(refused.stderr).toContain('BERTHA_API_KEY');

  const listed = await bertha(target, ['rollout', 'list'], target.port, { BERTHA_API_KEY: key });
  expect(listed.stderr).toBe('');
  expect(listed.code).toBe(0);
});
