import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * One Prometheus registry per Bertha instance (not prom-client's global one), so tests can
 * run several instances in one process. Capabilities register their metrics on it.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bertha_' });
  dropGaugesNamedLikeCounters(registry);
  return registry;
}

/**
 * prom-client's defaults include gauges named `*_total` (`nodejs_active_handles_total`,
 * `_requests_total`, `_resources_total`). The Prometheus naming rules reserve `_total` for
 * counters, so `promtool check metrics` rejects them, and each only repeats the sum of its
 * per-type gauge: `sum(bertha_nodejs_active_handles)` is the same number.
 */
function dropGaugesNamedLikeCounters(registry: Registry): void {
  for (const metric of registry.getMetricsAsArray()) {
    if (metric.name.endsWith('_total') && metric instanceof Gauge) registry.removeSingleMetric(metric.name);
  }
}
