import { describe, expect, onTestFinished, test } from 'vitest';
import { isoNow } from '../../src/core/ids.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import {
  ATTEMPT_STATUSES,
  canTransition,
  checkedSources,
  checkInitial,
  createRunState,
  INITIAL_STATUSES,
  InvalidTransitionError,
  judgeRun,
  RUN_STATUSES,
  STEP_STATUSES,
  TRIGGER_STATUSES,
} from '../../src/pipelines/run-state.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from './fixtures.ts';

const STATUSES = {
  run: RUN_STATUSES,
  step: STEP_STATUSES,
  attempt: ATTEMPT_STATUSES,
  trigger: TRIGGER_STATUSES,
} as const;
type Kind = keyof typeof STATUSES;
const KINDS = Object.keys(STATUSES) as Kind[];

/** Every (from, to) pair of a kind's states, self-moves included. */
function pairs(kind: Kind): [string, string][] {
  const statuses: readonly string[] = STATUSES[kind];
  return statuses.flatMap((from) => statuses.map((to) => [from, to] as [string, string]));
}

const allowed = (kind: Kind, from: string, to: string) => canTransition(kind, from as never, to as never);

test('a move the table lacks is refused before anything is written, for every pair of states', () => {
  for (const kind of KINDS) {
    for (const [from, to] of pairs(kind)) {
      const check = () => checkedSources(kind, 'x', to as never, [from as never]);
      if (allowed(kind, from, to)) expect(check()).toEqual([from]);
      else expect(check).toThrow(InvalidTransitionError);
    }
  }
});

test('rows are created only in their initial states', () => {
  for (const kind of KINDS) {
    for (const status of STATUSES[kind]) {
      const create = () => checkInitial(kind, 'x', status);
      if ((INITIAL_STATUSES[kind] as readonly string[]).includes(status)) expect(create()).toBe(status);
      else expect(create).toThrow(InvalidTransitionError);
    }
  }
});

test('a run is judged finished in one place: skipped steps count as done, a failure fails it', () => {
  const steps = [
    ['a', 'succeeded'],
    ['b', 'skipped'],
  ] as const;
  expect(judgeRun({ steps, settled: false })).toEqual({ status: 'succeeded', error: null });
  expect(judgeRun({ steps, failure: { step: 'a', error: 'boom' }, settled: false })).toEqual({
    status: 'failed',
    error: "step 'a' failed: boom",
  });
  const waiting = [...steps, ['c', 'pending'] as const];
  expect(judgeRun({ steps: waiting, settled: false })).toEqual({ status: 'open', waiting: ['c'] });
  expect(judgeRun({ steps: waiting, settled: true })).toEqual({ status: 'failed', error: 'steps never ran: c' });
});

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`pipeline state transitions on ${factory.name}`, () => {
    test('every move in the table is made and every other one is refused, leaving the row as it was', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const store = createRunStore(db);
      const state = createRunState(store);
      const k = db.kysely;
      const now = isoNow();
      // One row per pair, each created in the pair's `from` state.
      const id = (kind: Kind, from: string, to: string) => `${kind}_${from}_${to}`;
      await k
        .insertInto('pipeline_runs')
        .values(
          pairs('run').map(([from, to]) => ({
            id: id('run', from, to),
            pipeline: 'p',
            status: from,
            executor: 'local',
            params_json: '{}',
            source: 'test',
            trigger_id: null,
            concurrency_key: null,
            owner: null,
            lease_until: null,
            cancel_requested: 0,
            error: null,
            created_at: now,
            started_at: null,
            finished_at: null,
            updated_at: now,
          })),
        )
        .execute();
      await k
        .insertInto('pipeline_steps')
        .values(
          pairs('step').map(([from, to]) => ({
            id: `stp_${from}_${to}`,
            run_id: 'run_of_steps',
            name: id('step', from, to),
            status: from,
            attempts: 0,
            cache_key: null,
            cached_from: null,
            progress: null,
            progress_message: null,
            error: null,
            started_at: null,
            finished_at: null,
            updated_at: now,
          })),
        )
        .execute();
      await k
        .insertInto('pipeline_attempts')
        .values(
          pairs('attempt').map(([from, to]) => ({
            id: id('attempt', from, to),
            run_id: 'run_of_attempts',
            step: 's',
            attempt: 1,
            status: from,
            owner: 'test',
            error: null,
            started_at: now,
            finished_at: null,
          })),
        )
        .execute();
      await k
        .insertInto('pipeline_triggers')
        .values(
          pairs('trigger').map(([from, to]) => ({
            id: id('trigger', from, to),
            sensor: 'test',
            event_id: null,
            pipeline: 'p',
            params_json: '{}',
            concurrency_key: null,
            status: from,
            reason: null,
            run_id: null,
            created_at: now,
            updated_at: now,
          })),
        )
        .execute();

      const move = (kind: Kind, from: string, to: string): Promise<unknown> => {
        const rowId = id(kind, from, to);
        if (kind === 'trigger') return store.triggers.move(rowId, to as never);
        if (kind === 'step') return state.move({ kind, runId: 'run_of_steps', name: rowId }, to);
        return state.move({ kind, id: rowId }, to);
      };
      const statusOf = async (kind: Kind, from: string, to: string): Promise<string | undefined> => {
        const rowId = id(kind, from, to);
        if (kind === 'run') return (await store.getRun(rowId))?.status;
        if (kind === 'step') return (await store.getStep('run_of_steps', rowId))?.status;
        if (kind === 'attempt') {
          return (await k.selectFrom('pipeline_attempts').select('status').where('id', '=', rowId).executeTakeFirst())
            ?.status;
        }
        return (await store.triggers.list({ sensor: 'test', limit: 1000 })).find((row) => row.id === rowId)?.status;
      };

      const outcomes: string[] = [];
      const expected: string[] = [];
      for (const kind of KINDS) {
        for (const [from, to] of pairs(kind)) {
          const refused = await move(kind, from, to).then(
            () => undefined,
            (error: unknown) => error,
          );
          const after = await statusOf(kind, from, to);
          const verdict = refused
            ? `refused (${(refused as InvalidTransitionError).code}: ${(refused as InvalidTransitionError).details?.from} -> ${(refused as InvalidTransitionError).details?.to})`
            : 'moved';
          outcomes.push(`${kind} ${from} -> ${to}: ${verdict}, now ${after}`);
          expected.push(
            allowed(kind, from, to)
              ? `${kind} ${from} -> ${to}: moved, now ${to}`
              : `${kind} ${from} -> ${to}: refused (invalid_transition: ${from} -> ${to}), now ${from}`,
          );
          if (refused) expect(refused).toBeInstanceOf(InvalidTransitionError);
        }
      }
      expect(outcomes).toEqual(expected);
      // The table is not empty-handed: some moves of every kind are allowed and some refused.
      for (const kind of KINDS) {
        const kinds = pairs(kind).map(([from, to]) => allowed(kind, from, to));
        expect(kinds).toContain(true);
        expect(kinds).toContain(false);
      }
    });

    test('two Argo pods reporting the last steps at once both leave the run succeeded', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const store = createRunStore(db);
      const state = createRunState(store);
      const definition = testCatalog(tempDir()).get('word-stats');
      const run = await store.createRun({ id: 'argo-1', definition, params: {}, source: 'argo', executor: 'argo' });
      expect(run).toMatchObject({ status: 'running', executor: 'argo' });
      for (const step of definition.steps) {
        await state.startAttempt(run.id, step.name, 1, 'argo:pod');
        await db.kysely
          .updateTable('pipeline_steps')
          .set({ status: 'succeeded' })
          .where('run_id', '=', run.id)
          .where('name', '=', step.name)
          .execute();
      }
      await Promise.all([
        state.settleArgo(run.id, 'count', { status: 'succeeded' }),
        state.settleArgo(run.id, 'longest', { status: 'succeeded' }),
      ]);
      expect((await store.getRun(run.id))?.status).toBe('succeeded');
    });

    test('a move of a row that does not exist is not found, not refused', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const state = createRunState(createRunStore(db));
      await expect(state.move({ kind: 'run', id: 'run_missing' }, 'running')).rejects.toMatchObject({
        code: 'not_found',
      });
    });
  });
}
