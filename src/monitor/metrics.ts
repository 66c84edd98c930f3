import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * One Prometheus registry per Bertha instance (not prom-client's global one), so tests can
 * run several instances in one process. Capabilities register their metrics on it.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bertha_' });
  return registry;
}
