export { createMetricsRegistry } from './metrics.ts';
