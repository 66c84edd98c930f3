import type { Logger } from '../core/logger.ts';
import type { AlertEventPayload, EventBus } from '../events/index.ts';
import { alertEventType } from '../events/index.ts';
import type { FeedbackStore } from './feedback-store.ts';
import type { LoopMetrics } from './loop-metrics.ts';
import {
  type DegradationRulesConfig,
  DOWN_OVER_UP_ALERT,
  DOWN_RATIO_ALERT,
  degradationRules,
  durationMs,
} from './rules.ts';

export interface QualityWatcher {
  /** One evaluation of every rule; publishes firing and resolved alerts as events. */
  evaluate(now?: Date): Promise<void>;
  /**
   * Evaluates every `intervalMs` until the returned stop function is called, while `active()`
   * says so (the monitor lease: one process of a deployment watches). Pausing forgets the
   * conditions seen, since another process watched meanwhile.
   */
  start(intervalMs: number, active?: () => boolean): () => Promise<void>;
}

interface AlertState {
  activeSince: number;
  firingSince: string | null;
  /** The newest counted vote on the version when the condition was first seen: the vote that tipped it. */
  tippedAt: string | undefined;
}

/**
 * Prometheus's alerting semantics in-process, for machines without Prometheus: a condition
 * that holds for the rule's `for` fires, and fires once; when it stops holding, a firing
 * alert resolves. Events have the gateway's shape (source `watcher`), so sensors cannot
 * tell the two apart. The counts are read from the database, so votes cast through any
 * replica count.
 */
export function createQualityWatcher(options: {
  rules: DegradationRulesConfig;
  store: FeedbackStore;
  bus: EventBus;
  logger: Logger;
  /** Times feedback-to-alert for each alert this process raises. */
  loop?: LoopMetrics;
}): QualityWatcher {
  const { rules, store, bus, logger } = options;
  const definitions = new Map(degradationRules(rules).map((rule) => [rule.alert, rule]));
  const states = new Map<string, AlertState>();

  /** What `bertha_feedback_total` counts, per model version (since a time: what `increase()` over a window sees). */
  async function countedByVersion(since?: string): Promise<Map<string, { up: number; down: number }>> {
    const byVersion = new Map<string, { up: number; down: number }>();
    for (const row of await store.countedVotes(since)) {
      const counts = byVersion.get(row.modelVersion) ?? { up: 0, down: 0 };
      counts[row.rating] += row.count;
      byVersion.set(row.modelVersion, counts);
    }
    return byVersion;
  }

  async function activeConditions(now: Date): Promise<Map<string, { alert: string; modelVersion: string }>> {
    const active = new Map<string, { alert: string; modelVersion: string }>();
    const add = (alert: string, modelVersion: string) =>
      active.set(JSON.stringify([alert, modelVersion]), { alert, modelVersion });
    if (rules.downOverUp.enabled) {
      for (const [modelVersion, { up, down }] of await countedByVersion()) {
        if (down > up) add(DOWN_OVER_UP_ALERT, modelVersion);
      }
    }
    if (rules.downRatio.enabled) {
      const since = new Date(now.getTime() - durationMs(rules.downRatio.window)).toISOString();
      for (const [modelVersion, { up, down }] of await countedByVersion(since)) {
        const votes = up + down;
        if (votes >= rules.downRatio.minVotes && down / votes > rules.downRatio.threshold) {
          add(DOWN_RATIO_ALERT, modelVersion);
        }
      }
    }
    return active;
  }

  async function publish(
    alert: string,
    modelVersion: string,
    status: 'firing' | 'resolved',
    startsAt: string,
    now: Date,
    tippedAt?: string,
  ) {
    const rule = definitions.get(alert);
    const labels = { alertname: alert, model_version: modelVersion, ...(rule?.labels ?? {}) };
    const payload: AlertEventPayload = {
      model_version: modelVersion,
      alertname: alert,
      status,
      fingerprint: `watcher:${alert}:${modelVersion}`,
      group_key: `watcher:${alert}`,
      receiver: 'watcher',
      labels,
      annotations: {},
      starts_at: startsAt,
      ends_at: status === 'resolved' ? now.toISOString() : '0001-01-01T00:00:00Z',
      generator_url: '',
    };
    const { event, duplicate } = await bus.publish({
      type: alertEventType(status, modelVersion),
      source: 'watcher',
      subject: modelVersion,
      dedupeKey: `watcher:${alert}:${modelVersion}:${status}:${startsAt}`,
      payload,
    });
    if (status === 'firing' && !duplicate && tippedAt) {
      options.loop?.observe('feedback_to_alert', { from: tippedAt, to: event.createdAt, modelVersion });
    }
    logger.info({ alert, modelVersion, status }, status === 'firing' ? 'model degraded' : 'model recovered');
  }

  async function evaluate(now = new Date()): Promise<void> {
    const active = await activeConditions(now);
    for (const [key, { alert, modelVersion }] of active) {
      let state = states.get(key);
      if (!state) {
        const tippedAt = options.loop ? await store.newestCountedVote(modelVersion) : undefined;
        state = { activeSince: now.getTime(), firingSince: null, tippedAt };
        states.set(key, state);
      }
      const holdMs = durationMs(definitions.get(alert)?.for ?? '0s');
      if (state.firingSince === null && now.getTime() - state.activeSince >= holdMs) {
        state.firingSince = now.toISOString();
        await publish(alert, modelVersion, 'firing', state.firingSince, now, state.tippedAt);
      }
    }
    for (const [key, state] of states) {
      if (active.has(key)) continue;
      states.delete(key);
      if (state.firingSince !== null) {
        const [alert, modelVersion] = JSON.parse(key) as [string, string];
        await publish(alert, modelVersion, 'resolved', state.firingSince, now);
      }
    }
  }

  return {
    evaluate,
    start(intervalMs, active = () => true) {
      let running: Promise<void> = Promise.resolve();
      const timer = setInterval(() => {
        running = running.then(() => {
          if (!active()) {
            states.clear();
            return;
          }
          return evaluate().catch((error: unknown) =>
            logger.error({ err: error }, 'quality watcher evaluation failed'),
          );
        });
      }, intervalMs);
      timer.unref();
      return async () => {
        clearInterval(timer);
        await running;
      };
    },
  };
}
