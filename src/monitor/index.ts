export { createFeedbackMetrics, type FeedbackMetrics, type ModelFeedbackTally } from './feedback-metrics.ts';
export {
  createFeedbackStore,
  type FeedbackFilter,
  type FeedbackInput,
  type FeedbackRecord,
  type FeedbackStore,
  type Rating,
  type RecordedFeedback,
} from './feedback-store.ts';
export { gatewayToken } from './gateway-token.ts';
export { createMetricsRegistry } from './metrics.ts';
export { GATEWAY_PATH, type RenderedFile, renderMonitoring } from './render.ts';
export {
  type AlertingRule,
  DOWN_OVER_UP_ALERT,
  DOWN_RATIO_ALERT,
  degradationRules,
  durationMs,
} from './rules.ts';
export { createQualityWatcher, type QualityWatcher } from './watcher.ts';
