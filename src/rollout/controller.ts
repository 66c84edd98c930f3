import { ConflictError, NotFoundError, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { EventBus } from '../events/index.ts';
import type { LoopMetrics, RollbackKind } from '../monitor/index.ts';
import { decideStep, type RolloutPolicy, type StepDecision } from './decide.ts';
import type { DecisionInput, RolloutRecord, RolloutStore, RolloutVerdict } from './store.ts';

/** Published on every decision that changes what is served (start, step, promote, rollback). */
export const ROLLOUT_CHANGED = 'rollout.changed';

export interface RolloutChangedPayload {
  rolloutId: string;
  model: string;
  status: RolloutRecord['status'];
  championVersion: string;
  challengerVersion: string;
  share: number;
  kind: DecisionInput['kind'];
  reason: string;
}

export interface RolloutControllerDeps {
  store: RolloutStore;
  bus: EventBus;
  logger: Logger;
  /** Registered model whose champion alias a promotion moves. */
  model: string;
  /** Moves the champion alias to a version (`<model>/<n>`), on promotion and back on its rollback: the registry, wired in app.ts. */
  promote(version: string): Promise<void>;
  /** Traffic shares the challenger goes through, increasing, each below 1; after the last it is promoted. */
  steps: number[];
  policy: RolloutPolicy;
  /** Verdict-to-full-traffic on each promotion, time-to-rollback and the count on each rollback made here. */
  loop?: LoopMetrics | undefined;
}

export interface RolloutController {
  /**
   * Starts a canary of `challenger` against `champion` at the first traffic step; `verdict`
   * is the gate decision that chose it (kept with the rollout, timed on promotion).
   */
  start(
    championVersion: string,
    challengerVersion: string,
    reason: string,
    options?: { verdict?: RolloutVerdict },
  ): Promise<RolloutRecord>;
  /** Looks at the running rollout once: wait, step up, promote or roll back. */
  tick(): Promise<StepDecision | undefined>;
  /** Ends the running rollout by hand; the champion keeps serving. */
  rollback(reason: string): Promise<RolloutRecord | undefined>;
  /**
   * Rolls back the promotion that made `championVersion` champion, by hand: the champion alias
   * goes back to the version that rollout replaced, and the rollout is marked rolled back.
   * Refused while a rollout runs, or when no rollout promoted `championVersion`.
   */
  revertPromotion(championVersion: string, reason: string): Promise<RolloutRecord>;
  /** Ticks every `intervalMs` until the returned function is called. */
  run(intervalMs: number): () => Promise<void>;
}

/**
 * The canary controller: the challenger serves a share of conversations; at each look the two
 * versions' answers and votes since the step began are compared (`decideStep`). Every decision
 * is a `rollout_decisions` row with its evidence, and those that change what is served are
 * published as `rollout.changed`; a wait is stored once per step, with the evidence of that look.
 */
export function createRolloutController(deps: RolloutControllerDeps): RolloutController {
  const { store, bus, logger, steps } = deps;
  if (
    steps.length === 0 ||
    steps.some((share, i) => share <= 0 || share >= 1 || (i > 0 && share <= (steps[i - 1] as number)))
  ) {
    throw new ValidationError(`rollout steps must increase strictly within (0, 1): ${steps.join(', ')}`);
  }
  const waitedAt = new Set<string>();

  async function publish(rollout: RolloutRecord, decision: DecisionInput): Promise<void> {
    await bus.publish<RolloutChangedPayload>({
      type: ROLLOUT_CHANGED,
      source: 'rollout',
      subject: rollout.challengerVersion,
      payload: {
        rolloutId: rollout.id,
        model: rollout.model,
        status: rollout.status,
        championVersion: rollout.championVersion,
        challengerVersion: rollout.challengerVersion,
        share: rollout.share,
        kind: decision.kind,
        reason: decision.reason,
      },
    });
    logger.info(
      { rolloutId: rollout.id, kind: decision.kind, share: rollout.share, reason: decision.reason },
      'rollout decision',
    );
  }

  async function apply(rollout: RolloutRecord, decision: DecisionInput): Promise<RolloutRecord | undefined> {
    const updated = await store.decide(rollout, decision);
    if (updated && decision.kind !== 'wait') await publish(updated, decision);
    return updated;
  }

  /**
   * The loop's figures for a rollout this process just ended (its conditional write won, so
   * no other process reports it): time-to-rollback from when the version started to take the
   * traffic rolled back, verdict-to-full-traffic from the gate verdict stored at the start.
   */
  async function observeEnd(
    updated: RolloutRecord,
    end: { kind: 'promote' } | { kind: 'rollback'; rollback: RollbackKind; servingSince: string },
  ): Promise<void> {
    const { loop } = deps;
    if (!loop) return;
    const to = updated.finishedAt ?? updated.updatedAt;
    const modelVersion = updated.challengerVersion;
    if (end.kind === 'rollback') {
      loop.rolledBack(end.rollback);
      loop.observe('time_to_rollback', { from: end.servingSince, to, modelVersion });
      return;
    }
    try {
      const verdict = await store.verdict(updated.id);
      if (verdict) loop.observe('verdict_to_full_traffic', { from: verdict.decidedAt, to, modelVersion });
    } catch (error) {
      logger.warn({ err: error, rolloutId: updated.id }, 'could not time verdict to full traffic');
    }
  }

  let ticking: Promise<StepDecision | undefined> | undefined;
  async function tickOnce(): Promise<StepDecision | undefined> {
    const rollout = await store.active(deps.model);
    if (!rollout) return undefined;
    const [champion, challenger] = await Promise.all([
      store.evidence(rollout.championVersion, rollout.stepStartedAt),
      store.evidence(rollout.challengerVersion, rollout.stepStartedAt),
    ]);
    const decision = decideStep(champion, challenger, deps.policy);
    const evidence = { champion, challenger, probabilities: decision.probabilities, policy: deps.policy };
    const reason = decision.reasons.join('; ');
    if (decision.verdict === 'wait') {
      const key = `${rollout.id}:${rollout.step}`;
      if (!waitedAt.has(key)) {
        waitedAt.add(key);
        await apply(rollout, { kind: 'wait', reason, evidence, step: rollout.step, share: rollout.share });
      }
      return decision;
    }
    if (decision.verdict === 'rollback') {
      const updated = await apply(rollout, { kind: 'rollback', reason, evidence, step: rollout.step, share: 0 });
      if (updated) await observeEnd(updated, { kind: 'rollback', rollback: 'canary', servingSince: rollout.createdAt });
      return decision;
    }
    const next = rollout.step + 1;
    if (next < steps.length) {
      await apply(rollout, { kind: 'step', reason, evidence, step: next, share: steps[next] as number });
      return decision;
    }
    // The alias moves first: if that fails the rollout stays running and the next look retries.
    await deps.promote(rollout.challengerVersion);
    const promoted = await apply(rollout, { kind: 'promote', reason, evidence, step: next, share: 1 });
    if (promoted) await observeEnd(promoted, { kind: 'promote' });
    return decision;
  }

  const controller: RolloutController = {
    async start(championVersion, challengerVersion, reason, options = {}) {
      const rollout = await store.start({
        model: deps.model,
        championVersion,
        challengerVersion,
        share: steps[0] as number,
        reason,
        verdict: options.verdict,
      });
      await publish(rollout, { kind: 'start', reason, evidence: {}, step: 0, share: rollout.share });
      return rollout;
    },
    tick() {
      // One look at a time, in this process.
      ticking ??= tickOnce().finally(() => {
        ticking = undefined;
      });
      return ticking;
    },
    async rollback(reason) {
      const rollout = await store.active(deps.model);
      if (!rollout) return undefined;
      // What the arms did in the current step: the evidence the operator acted on.
      const [champion, challenger] = await Promise.all([
        store.evidence(rollout.championVersion, rollout.stepStartedAt),
        store.evidence(rollout.challengerVersion, rollout.stepStartedAt),
      ]);
      const evidence = { manual: true, champion, challenger };
      const updated = await apply(rollout, { kind: 'rollback', reason, evidence, step: rollout.step, share: 0 });
      if (updated) await observeEnd(updated, { kind: 'rollback', rollback: 'manual', servingSince: rollout.createdAt });
      return updated;
    },
    async revertPromotion(championVersion, reason) {
      const running = await store.active(deps.model);
      if (running) {
        throw new ConflictError(`rollout ${running.id} of ${deps.model} is running: roll it back first`, {
          rolloutId: running.id,
        });
      }
      const promoted = await store.promotedTo(deps.model, championVersion);
      if (!promoted) throw new NotFoundError('rollout that promoted', championVersion);
      const previous = promoted.championVersion;
      // A rollout against the configured or starter model has no registry version to go back to.
      if (!previous.startsWith(`${deps.model}/`)) {
        throw new ConflictError(
          `${championVersion} replaced ${previous}, which is not a version of ${deps.model} in the registry: the champion alias cannot point back to it`,
          { rolloutId: promoted.id, previous },
        );
      }
      const sincePromotion = await store.evidence(championVersion, promoted.finishedAt ?? promoted.updatedAt);
      const decision: DecisionInput = {
        kind: 'rollback',
        reason,
        evidence: { manual: true, revertedPromotion: true, from: championVersion, to: previous, sincePromotion },
        step: promoted.step,
        share: 0,
      };
      // The alias moves first, as on promotion: if that fails nothing is recorded.
      await deps.promote(previous);
      const updated = await store.revertPromotion(promoted, decision);
      if (!updated) throw new ConflictError(`the promotion of ${championVersion} was already rolled back`);
      await publish(updated, decision);
      // A reverted version took all the traffic from its promotion on.
      await observeEnd(updated, {
        kind: 'rollback',
        rollback: 'revert',
        servingSince: promoted.finishedAt ?? promoted.updatedAt,
      });
      return updated;
    },
    run(intervalMs) {
      const timer = setInterval(() => {
        controller.tick().catch((error: unknown) => logger.error({ err: error }, 'rollout look failed'));
      }, intervalMs);
      timer.unref();
      return async () => {
        clearInterval(timer);
        await ticking?.catch(() => undefined);
      };
    },
  };
  return controller;
}
