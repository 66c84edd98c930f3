import { sql } from 'kysely';
import { ConflictError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { MetadataDb, RolloutDecisionsTable, RolloutsTable } from '../db/index.ts';
import type { ArmEvidence } from './decide.ts';

export type RolloutStatus = 'running' | 'promoted' | 'rolled_back';
export type DecisionKind = 'start' | 'wait' | 'step' | 'promote' | 'rollback';

export interface RolloutRecord {
  id: string;
  model: string;
  championVersion: string;
  challengerVersion: string;
  status: RolloutStatus;
  step: number;
  share: number;
  stepStartedAt: string;
  reason: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface RolloutDecision {
  id: string;
  rolloutId: string;
  kind: DecisionKind;
  step: number;
  shareBefore: number;
  shareAfter: number;
  reason: string;
  evidence: Record<string, unknown>;
  createdAt: string;
}

export interface DecisionInput {
  kind: DecisionKind;
  reason: string;
  evidence: Record<string, unknown>;
  /** The step and share after the decision (unchanged for a wait). */
  step: number;
  share: number;
}

/** The gate verdict a rollout was started on: the `gate.decided` event and when it was stored. */
export interface RolloutVerdict {
  gate: string;
  decidedAt: string;
}

export interface RolloutStore {
  /** The verdict, when given, is kept in the start decision's evidence. */
  start(input: {
    model: string;
    championVersion: string;
    challengerVersion: string;
    share: number;
    reason: string;
    verdict?: RolloutVerdict | undefined;
  }): Promise<RolloutRecord>;
  /** The running rollout of a model, if any. */
  active(model: string): Promise<RolloutRecord | undefined>;
  get(id: string): Promise<RolloutRecord | undefined>;
  list(limit: number): Promise<RolloutRecord[]>;
  decisions(rolloutId: string): Promise<RolloutDecision[]>;
  /** The verdict stored with the rollout's start, if it was started on one. */
  verdict(rolloutId: string): Promise<RolloutVerdict | undefined>;
  /**
   * Stores a decision and applies it to the rollout in one transaction, only if the rollout is
   * still running at the step the decision was taken on (another controller may have moved it).
   * Returns the updated rollout, or undefined when it had moved.
   */
  decide(rollout: RolloutRecord, decision: DecisionInput): Promise<RolloutRecord | undefined>;
  /** The newest rollout of a model that promoted `version` and was not rolled back since. */
  promotedTo(model: string, version: string): Promise<RolloutRecord | undefined>;
  /**
   * Stores the rollback of a promotion (the champion alias went back to the rollout's champion)
   * and marks the rollout rolled back, in one transaction, only if it is still promoted.
   * Returns the updated rollout, or undefined when another rollback came first.
   */
  revertPromotion(rollout: RolloutRecord, decision: DecisionInput): Promise<RolloutRecord | undefined>;
  /** What a version's answers and their votes were since an ISO time. */
  evidence(version: string, since: string): Promise<ArmEvidence>;
}

function toRecord(row: RolloutsTable): RolloutRecord {
  return {
    id: row.id,
    model: row.model,
    championVersion: row.champion_version,
    challengerVersion: row.challenger_version,
    status: row.status as RolloutStatus,
    step: Number(row.step),
    share: Number(row.share),
    stepStartedAt: row.step_started_at,
    reason: row.reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

function toDecision(row: RolloutDecisionsTable): RolloutDecision {
  return {
    id: row.id,
    rolloutId: row.rollout_id,
    kind: row.kind as DecisionKind,
    step: Number(row.step),
    shareBefore: Number(row.share_before),
    shareAfter: Number(row.share_after),
    reason: row.reason,
    evidence: JSON.parse(row.evidence_json) as Record<string, unknown>,
    createdAt: row.created_at,
  };
}

const STATUS_AFTER: Partial<Record<DecisionKind, RolloutStatus>> = { promote: 'promoted', rollback: 'rolled_back' };

export function createRolloutStore(db: MetadataDb): RolloutStore {
  const k = db.kysely;
  /**
   * A decision row and the rollout's new state in one transaction, conditional on the rollout
   * still being `from` at the step the decision was taken on.
   */
  function applyDecision(
    rollout: RolloutRecord,
    decision: DecisionInput,
    from: RolloutStatus,
  ): Promise<RolloutRecord | undefined> {
    return k.transaction().execute(async (tx) => {
      const now = isoNow();
      const status = STATUS_AFTER[decision.kind] ?? 'running';
      const moved = decision.step !== rollout.step;
      const updated = await tx
        .updateTable('rollouts')
        .set({
          status,
          step: decision.step,
          share: decision.share,
          ...(moved ? { step_started_at: now } : {}),
          reason: decision.reason,
          updated_at: now,
          ...(status !== 'running' ? { finished_at: now } : {}),
        })
        .where('id', '=', rollout.id)
        .where('status', '=', from)
        .where('step', '=', rollout.step)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) return undefined;
      await tx
        .insertInto('rollout_decisions')
        .values({
          id: newId('rdc'),
          rollout_id: rollout.id,
          kind: decision.kind,
          step: decision.step,
          share_before: rollout.share,
          share_after: decision.share,
          reason: decision.reason,
          evidence_json: JSON.stringify(decision.evidence),
          created_at: now,
        })
        .execute();
      const row = await tx.selectFrom('rollouts').selectAll().where('id', '=', rollout.id).executeTakeFirstOrThrow();
      return toRecord(row);
    });
  }

  return {
    async start(input) {
      return k.transaction().execute(async (tx) => {
        const running = await tx
          .selectFrom('rollouts')
          .select('id')
          .where('model', '=', input.model)
          .where('status', '=', 'running')
          .executeTakeFirst();
        if (running) throw new ConflictError(`rollout ${running.id} of ${input.model} is still running`);
        const now = isoNow();
        const row: RolloutsTable = {
          id: newId('rol'),
          model: input.model,
          champion_version: input.championVersion,
          challenger_version: input.challengerVersion,
          status: 'running',
          step: 0,
          share: input.share,
          step_started_at: now,
          reason: null,
          created_at: now,
          updated_at: now,
          finished_at: null,
        };
        await tx.insertInto('rollouts').values(row).execute();
        await tx
          .insertInto('rollout_decisions')
          .values({
            id: newId('rdc'),
            rollout_id: row.id,
            kind: 'start',
            step: 0,
            share_before: 0,
            share_after: input.share,
            reason: input.reason,
            evidence_json: JSON.stringify({
              champion: input.championVersion,
              challenger: input.challengerVersion,
              ...(input.verdict ? { verdict: input.verdict } : {}),
            }),
            created_at: now,
          })
          .execute();
        return toRecord(row);
      });
    },
    async active(model) {
      const row = await k
        .selectFrom('rollouts')
        .selectAll()
        .where('model', '=', model)
        .where('status', '=', 'running')
        .executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },
    async get(id) {
      const row = await k.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },
    async list(limit) {
      const rows = await k
        .selectFrom('rollouts')
        .selectAll()
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
      return rows.map(toRecord);
    },
    async decisions(rolloutId) {
      const rows = await k
        .selectFrom('rollout_decisions')
        .selectAll()
        .where('rollout_id', '=', rolloutId)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map(toDecision);
    },
    async verdict(rolloutId) {
      const row = await k
        .selectFrom('rollout_decisions')
        .select('evidence_json')
        .where('rollout_id', '=', rolloutId)
        .where('kind', '=', 'start')
        .executeTakeFirst();
      const verdict = row
        ? (JSON.parse(row.evidence_json) as { verdict?: Partial<RolloutVerdict> }).verdict
        : undefined;
      return typeof verdict?.gate === 'string' && typeof verdict.decidedAt === 'string'
        ? { gate: verdict.gate, decidedAt: verdict.decidedAt }
        : undefined;
    },
    decide(rollout, decision) {
      return applyDecision(rollout, decision, 'running');
    },
    async promotedTo(model, version) {
      const row = await k
        .selectFrom('rollouts')
        .selectAll()
        .where('model', '=', model)
        .where('challenger_version', '=', version)
        .where('status', '=', 'promoted')
        .orderBy('finished_at', 'desc')
        .orderBy('id', 'desc')
        .executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },
    revertPromotion(rollout, decision) {
      return applyDecision(rollout, decision, 'promoted');
    },
    async evidence(version, since) {
      const answers = await k
        .selectFrom('answers')
        .select([
          sql<number>`count(*)`.as('answers'),
          sql<number>`sum(case when status = 'failed' then 1 else 0 end)`.as('failed'),
        ])
        .where('model_version', '=', version)
        .where('created_at', '>=', since)
        .executeTakeFirst();
      const votes = await k
        .selectFrom('feedback')
        .innerJoin('answers', 'answers.id', 'feedback.answer_id')
        .select(['feedback.rating', sql<number>`count(*)`.as('n')])
        .where('feedback.model_version', '=', version)
        .where('answers.created_at', '>=', since)
        .groupBy('feedback.rating')
        .execute();
      const count = (rating: string) => Number(votes.find((row) => row.rating === rating)?.n ?? 0);
      return {
        version,
        answers: Number(answers?.answers ?? 0),
        failed: Number(answers?.failed ?? 0),
        up: count('up'),
        down: count('down'),
      };
    },
  };
}
