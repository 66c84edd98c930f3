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
export { createMetricsRegistry } from './metrics.ts';
