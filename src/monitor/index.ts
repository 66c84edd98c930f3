export { createFeedbackMetrics, type FeedbackMetrics, type ModelFeedbackTally } from './feedback-metrics.ts';
export {
  createFeedbackStore,
  type FeedbackFilter,
  type FeedbackInput,
  type FeedbackRecord,
  type FeedbackStore,
  type FeedbackUpdate,
  type Rating,
  type RecordedFeedback,
} from './feedback-store.ts';
export { timeGatewayAlerts } from './gateway-alert-timing.ts';
export { gatewayToken } from './gateway-token.ts';
export {
  createLoopMetrics,
  LOOP_BUCKETS,
  LOOP_INTERVALS,
  type LoopInterval,
  type LoopMetrics,
  type LoopSpan,
  loopMetricName,
  noLoopMetrics,
  type RollbackKind,
  type SuppressionReason,
} from './loop-metrics.ts';
export {
  LOOP_OBJECTIVES,
  LOOP_SLO_WINDOW,
  type LoopObjectives,
  loopObjectives,
  loopSloAlertName,
  loopSloRules,
} from './loop-slos.ts';
export { createMetricsRegistry } from './metrics.ts';
export { createMonitorLease, type MonitorLease } from './monitor-lease.ts';
export { GATEWAY_PATH, type RenderedFile, renderMonitoring } from './render.ts';
export {
  type AlertingRule,
  DOWN_OVER_UP_ALERT,
  DOWN_RATIO_ALERT,
  degradationRules,
  durationMs,
} from './rules.ts';
export { createQualityWatcher, type QualityWatcher } from './watcher.ts';
