import type { BerthaEvent } from '../events/index.ts';
import type { FeedbackStore } from './feedback-store.ts';
import type { LoopMetrics } from './loop-metrics.ts';

/**
 * Feedback-to-alert for alerts that come from Prometheus through Alertmanager (the embedded
 * watcher times its own): from the newest counted vote on the degraded version at or before
 * the alert's `startsAt` (when Prometheus first saw the rule hold), to the stored event. The
 * gateway calls it once per alert episode, on the process that stored it.
 */
export function timeGatewayAlerts(
  store: Pick<FeedbackStore, 'newestCountedVote'>,
  loop: LoopMetrics,
): (event: BerthaEvent) => Promise<void> {
  return async (event) => {
    if (event.type !== 'model.degraded' || !event.subject) return;
    const startsAt = Date.parse(String((event.payload as { starts_at?: unknown }).starts_at));
    const tippedAt = await store.newestCountedVote(
      event.subject,
      Number.isNaN(startsAt) ? undefined : new Date(startsAt).toISOString(),
    );
    if (tippedAt)
      loop.observe('feedback_to_alert', { from: tippedAt, to: event.createdAt, modelVersion: event.subject });
  };
}
