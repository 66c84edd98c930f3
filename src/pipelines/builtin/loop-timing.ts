import type { MetadataDb } from '../../db/index.ts';
import { armRefusals, type GateOutcome } from '../../eval/index.ts';
import { alertEventType } from '../../events/index.ts';
import { createLineageStore } from '../../lineage/index.ts';
import type { LoopMetrics } from '../../monitor/index.ts';
import type { ModelRegistry } from '../../tracking/index.ts';
import type { StepContext } from '../handlers.ts';
import type { RunObserver } from '../run-observer.ts';
import { vectorIngestion } from './vector-ingestion.ts';

/** What an alert becomes at the gateway or in the watcher: `model.degraded` names a model version, `alert.firing` none. */
const DEGRADED = alertEventType('firing', 'any');
const FIRING = alertEventType('firing', undefined);
const UPLOADED = 'object.created';

/**
 * The loop's figures that begin at the event behind a run: alert-to-run-started when a run an
 * alert triggered first starts (labelled with the degraded model version), and
 * upload-to-searchable when the ingestion run an upload triggered succeeds (its last step has
 * written the chunks).
 */
export function loopRunTiming(loop: LoopMetrics): RunObserver {
  return {
    started(_run, startedAt, origin) {
      if (origin?.type !== DEGRADED && origin?.type !== FIRING) return;
      const modelVersion = origin.type === DEGRADED ? (origin.subject ?? 'none') : 'none';
      loop.observe('alert_to_run_started', { from: origin.createdAt, to: startedAt, modelVersion });
    },
    finished(run, outcome, origin) {
      if (run.pipeline !== vectorIngestion.name || outcome.status !== 'succeeded' || origin?.type !== UPLOADED) return;
      loop.observe('upload_to_searchable', { from: origin.createdAt, to: outcome.finishedAt });
    },
  };
}

/**
 * dataset-to-candidate, observed by the step that registered the candidate: from the `built`
 * edge build-dataset stored for this run's dataset to the registry version's creation.
 */
export async function observeCandidate(
  deps: { db: MetadataDb; registry: ModelRegistry; loop?: LoopMetrics | undefined },
  context: Pick<StepContext, 'runId' | 'log'>,
  dataset: { version: string },
  registered: { name: string; version: string },
): Promise<void> {
  if (!deps.loop) return;
  const modelVersion = `${registered.name}/${registered.version}`;
  try {
    const built = (
      await createLineageStore(deps.db).edges({ kind: 'dataset', id: dataset.version }, 'upstream', {
        kind: 'run',
        limit: 1000,
      })
    ).find((edge) => edge.relation === 'built' && edge.from.id === context.runId);
    if (!built) return;
    const version = await deps.registry.store.getModelVersion(registered.name, registered.version);
    deps.loop.observe('dataset_to_candidate', { from: built.createdAt, to: version.creation_timestamp, modelVersion });
  } catch (error) {
    context.log.warn(`could not time dataset to candidate for ${modelVersion}: ${(error as Error).message}`);
  }
}

/**
 * candidate-to-verdict from each arm's registry version to the stored `gate.decided`, and the
 * gate's refusals by reason; observed by the gate step that stored the verdict.
 */
export async function observeVerdict(
  deps: { registry: ModelRegistry; model: string; loop?: LoopMetrics | undefined },
  context: Pick<StepContext, 'log'>,
  outcome: GateOutcome,
  decidedAt: string,
): Promise<void> {
  const { loop } = deps;
  if (!loop) return;
  for (const refusal of armRefusals(outcome)) loop.gateRefused(refusal.reason);
  for (const arm of outcome.arms) {
    try {
      const version = await deps.registry.store.getModelVersion(deps.model, versionNumber(arm.version));
      loop.observe('candidate_to_verdict', {
        from: version.creation_timestamp,
        to: decidedAt,
        modelVersion: arm.version,
      });
    } catch (error) {
      context.log.warn(`could not time candidate to verdict for ${arm.version}: ${(error as Error).message}`);
    }
  }
}

/** `<model>/<n>` -> `<n>`, as the registry numbers versions. */
function versionNumber(version: string): string {
  return version.slice(version.lastIndexOf('/') + 1);
}
