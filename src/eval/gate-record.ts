import type { EventBus } from '../events/index.ts';
import type { LineageEdge, LineageRecorder } from '../lineage/index.ts';
import type { ModelRegistry, RunLog } from '../tracking/index.ts';
import type { GateOutcome } from './choose-arm.ts';
import { type GateRefusalReason, type GateVerdict, gateRefusalReason } from './gate.ts';

export const GATE_DECIDED = 'gate.decided';

/** Payload of `gate.decided`: every arm's verdict with its evidence, and the arm chosen. */
export interface GateDecidedPayload {
  runId: string;
  championVersion: string;
  decision: GateOutcome['decision'];
  /** The version the canary starts with; null when no arm passed. */
  chosenVersion: string | null;
  arms: Array<{
    arm: string;
    version: string;
    decision: GateVerdict['decision'];
    primary: GateVerdict['primary'];
    guards: GateVerdict['guards'];
    reasons: string[];
  }>;
  reasons: string[];
}

/** The stored verdict: the `gate.decided` event; `duplicate` when a retried step had stored it already. */
export interface RecordedGate {
  gateId: string;
  decidedAt: string;
  duplicate: boolean;
}

/**
 * A gate outcome is kept four ways: on each arm's tracking run (decision, interval), on its
 * registry version (tags `bertha.gate.decision`, `bertha.gate.reasons`, which `bertha models`
 * shows), as one `gate.decided` event with the evidence of every arm, and in the lineage: the
 * event is the gate node, with edges from the run that decided and every version it weighed.
 */
export async function recordGateOutcome(
  deps: { runs: RunLog; registry: ModelRegistry; bus: EventBus; lineage: LineageRecorder },
  decided: { pipelineRunId: string; name: string; championVersion: string; outcome: GateOutcome },
): Promise<RecordedGate> {
  const { outcome } = decided;
  for (const arm of outcome.arms) {
    const { verdict } = arm;
    const primary = verdict.primary;
    const chosen = outcome.chosen?.version === arm.version;
    await deps.runs.log(arm.trackingRunId, {
      params: { gate_decision: verdict.decision, gate_chosen: String(chosen) },
      metrics: primary
        ? {
            gate_mean_difference: primary.meanDifference,
            gate_interval_low: primary.interval[0],
            gate_interval_high: primary.interval[1],
          }
        : {},
    });
    const number = arm.version.slice(arm.version.lastIndexOf('/') + 1);
    await deps.registry.store.setModelVersionTag(decided.name, number, {
      key: 'bertha.gate.decision',
      value: verdict.decision,
    });
    await deps.registry.store.setModelVersionTag(decided.name, number, {
      key: 'bertha.gate.reasons',
      value: [...verdict.reasons, chosen ? 'chosen for the canary' : ''].filter(Boolean).join('; ').slice(0, 5000),
    });
  }
  const { event, duplicate } = await deps.bus.publish<GateDecidedPayload>({
    type: GATE_DECIDED,
    source: 'llm-retraining',
    subject: outcome.chosen?.version ?? decided.championVersion,
    dedupeKey: `${GATE_DECIDED}:${decided.pipelineRunId}`,
    payload: {
      runId: decided.pipelineRunId,
      championVersion: decided.championVersion,
      decision: outcome.decision,
      chosenVersion: outcome.chosen?.version ?? null,
      arms: outcome.arms.map((arm) => ({
        arm: arm.arm,
        version: arm.version,
        decision: arm.verdict.decision,
        primary: arm.verdict.primary,
        guards: arm.verdict.guards,
        reasons: arm.verdict.reasons,
      })),
      reasons: outcome.reasons,
    },
  });
  const gate = { kind: 'gate', id: event.id } as const;
  const edges: LineageEdge[] = [
    { from: { kind: 'run', id: decided.pipelineRunId }, to: gate, relation: 'decided' },
    { from: { kind: 'model-version', id: decided.championVersion }, to: gate, relation: 'champion in' },
    ...outcome.arms.map((arm) => ({
      from: { kind: 'model-version', id: arm.version } as const,
      to: gate,
      relation: 'evaluated by',
      attributes: { arm: arm.arm, decision: arm.verdict.decision, chosen: outcome.chosen?.version === arm.version },
    })),
  ];
  await deps.lineage.link(edges);
  return { gateId: event.id, decidedAt: event.createdAt, duplicate };
}

/** Why each arm that does not ship was refused (the chosen arm is not listed). */
export function armRefusals(outcome: GateOutcome): Array<{ version: string; reason: GateRefusalReason }> {
  return outcome.arms.flatMap((arm) => {
    if (outcome.chosen?.version === arm.version) return [];
    return [{ version: arm.version, reason: gateRefusalReason(arm.verdict) ?? 'not_chosen' }];
  });
}
