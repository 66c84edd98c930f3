import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError } from '../core/errors.ts';
import { parseInput } from '../core/validate.ts';
import type { RolloutController } from './controller.ts';
import type { ArmEvidence } from './decide.ts';
import type { RolloutDecision, RolloutRecord, RolloutStore } from './store.ts';

export interface RolloutRouteDeps {
  store: RolloutStore;
  controller: RolloutController;
  /** The version chat serves as champion now (what a canary is compared with by default). */
  championVersion(): string | undefined;
  /** Throws a not-found error for a version the registry does not have. */
  checkVersion(version: string): Promise<void>;
}

const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(200).default(20) }).strict();
const startBody = z
  .object({
    challenger_version: z.string().min(1),
    champion_version: z.string().min(1).optional(),
    reason: z.string().min(1).max(2000).default('started by hand'),
  })
  .strict();
const rollbackBody = z.object({ reason: z.string().min(1).max(2000).default('rolled back by hand') }).strict();
const revertBody = z
  .object({
    /** The version the caller sees as champion; by default what chat serves. */
    champion_version: z.string().min(1).optional(),
    reason: z.string().min(1).max(2000).default('promotion rolled back by hand'),
  })
  .strict();

/** A rollout as the API writes it (`GET /v1/rollouts`, and the answers of start, rollback, revert). */
export type RolloutJson = ReturnType<typeof rolloutJson>;
/** A stored decision as the API writes it. */
export type DecisionJson = ReturnType<typeof decisionJson>;
/** `GET /v1/rollouts/:id`: the rollout, both arms' counts and every decision. */
export type RolloutDetailJson = RolloutJson & {
  arms: Awaited<ReturnType<typeof armsOf>>;
  decisions: DecisionJson[];
};

function rolloutJson(rollout: RolloutRecord) {
  return {
    id: rollout.id,
    model: rollout.model,
    champion_version: rollout.championVersion,
    challenger_version: rollout.challengerVersion,
    status: rollout.status,
    step: rollout.step,
    share: rollout.share,
    step_started_at: rollout.stepStartedAt,
    reason: rollout.reason,
    created_at: rollout.createdAt,
    updated_at: rollout.updatedAt,
    finished_at: rollout.finishedAt,
  };
}

function decisionJson(decision: RolloutDecision) {
  return {
    id: decision.id,
    kind: decision.kind,
    step: decision.step,
    share_before: decision.shareBefore,
    share_after: decision.shareAfter,
    reason: decision.reason,
    evidence: decision.evidence,
    created_at: decision.createdAt,
  };
}

function isArm(value: unknown): value is ArmEvidence {
  return typeof value === 'object' && value !== null && 'version' in value && 'answers' in value && 'up' in value;
}

/**
 * Both arms' answers, errors and votes: live since the current step began while the rollout
 * runs; afterwards those of the last decision that looked at both arms.
 */
async function armsOf(store: RolloutStore, rollout: RolloutRecord, decisions: RolloutDecision[]) {
  if (rollout.status === 'running') {
    const [champion, challenger] = await Promise.all([
      store.evidence(rollout.championVersion, rollout.stepStartedAt),
      store.evidence(rollout.challengerVersion, rollout.stepStartedAt),
    ]);
    return { live: true, since: rollout.stepStartedAt, decision_id: null, champion, challenger };
  }
  const last = decisions.findLast(
    (decision) => isArm(decision.evidence.champion) && isArm(decision.evidence.challenger),
  );
  if (!last) return null;
  return {
    live: false,
    since: null,
    decision_id: last.id,
    champion: last.evidence.champion as ArmEvidence,
    challenger: last.evidence.challenger as ArmEvidence,
  };
}

/** Canary rollouts: list, one with every decision and its evidence, start by hand, roll back by hand. */
export function registerRolloutRoutes(app: FastifyInstance, deps: RolloutRouteDeps): void {
  app.get('/v1/rollouts', async (request) => {
    const { limit } = parseInput(listQuery, request.query, 'query');
    return { data: (await deps.store.list(limit)).map(rolloutJson) };
  });

  app.get<{ Params: { id: string } }>('/v1/rollouts/:id', async (request) => {
    const rollout = await deps.store.get(request.params.id);
    if (!rollout) throw new NotFoundError('rollout', request.params.id);
    const decisions = await deps.store.decisions(rollout.id);
    const detail: RolloutDetailJson = {
      ...rolloutJson(rollout),
      arms: await armsOf(deps.store, rollout, decisions),
      decisions: decisions.map(decisionJson),
    };
    return detail;
  });

  app.post('/v1/rollouts', async (request, reply) => {
    const body = parseInput(startBody, request.body ?? {});
    const champion = body.champion_version ?? deps.championVersion();
    if (!champion) throw new NotFoundError('champion', 'no model is being served');
    await deps.checkVersion(body.challenger_version);
    const rollout = await deps.controller.start(champion, body.challenger_version, body.reason);
    return reply.status(201).send(rolloutJson(rollout));
  });

  app.post('/v1/rollouts/rollback', async (request) => {
    const body = parseInput(rollbackBody, request.body ?? {});
    const rollout = await deps.controller.rollback(body.reason);
    if (!rollout) throw new NotFoundError('running rollout', 'none');
    return rolloutJson(rollout);
  });

  // With no rollout running: the champion alias goes back to the version the newest promotion replaced.
  app.post('/v1/rollouts/revert', async (request) => {
    const body = parseInput(revertBody, request.body ?? {});
    const champion = body.champion_version ?? deps.championVersion();
    if (!champion) throw new NotFoundError('champion', 'no model is being served');
    return rolloutJson(await deps.controller.revertPromotion(champion, body.reason));
  });
}
