import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Serving metrics, named after vLLM's and llama.cpp server's with a `bertha_` prefix, so
 * dashboards and alert rules written for those servers carry over. Every series is labelled
 * with the model bundle version that answered.
 */
export interface ServingMetrics {
  requests: Counter<'model_version' | 'status'>;
  timeToFirstToken: Histogram<'model_version'>;
  e2eLatency: Histogram<'model_version'>;
  promptTokens: Counter<'model_version'>;
  cachedPromptTokens: Counter<'model_version'>;
  generationTokens: Counter<'model_version'>;
  tokensPerSecond: Histogram<'model_version'>;
  running: Gauge<'model_version'>;
  waiting: Gauge<'model_version'>;
  cost: Counter<'model_version'>;
  computeSeconds: Counter<'model_version'>;
}

export function createServingMetrics(registry: Registry): ServingMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'bertha_requests_total',
      help: 'Chat completion requests by outcome (completed, cancelled, failed, rejected) and model version',
      labelNames: ['model_version', 'status'],
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: 'bertha_time_to_first_token_seconds',
      help: 'Time from request arrival to the first generated text',
      labelNames: ['model_version'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    e2eLatency: new Histogram({
      name: 'bertha_e2e_request_latency_seconds',
      help: 'Time from request arrival to the last generated token',
      labelNames: ['model_version'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
      registers,
    }),
    promptTokens: new Counter({
      name: 'bertha_prompt_tokens_total',
      help: 'Prompt tokens processed',
      labelNames: ['model_version'],
      registers,
    }),
    cachedPromptTokens: new Counter({
      name: 'bertha_prompt_tokens_cached_total',
      help: 'Prompt tokens reused from the runtime prefix cache instead of evaluated (a part of bertha_prompt_tokens_total)',
      labelNames: ['model_version'],
      registers,
    }),
    generationTokens: new Counter({
      name: 'bertha_generation_tokens_total',
      help: 'Tokens generated',
      labelNames: ['model_version'],
      registers,
    }),
    tokensPerSecond: new Histogram({
      name: 'bertha_generation_tokens_per_second',
      help: 'Decode speed of each answer after its first token',
      labelNames: ['model_version'],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
      registers,
    }),
    running: new Gauge({
      name: 'bertha_requests_running',
      help: 'Requests generating now',
      labelNames: ['model_version'],
      registers,
    }),
    waiting: new Gauge({
      name: 'bertha_requests_waiting',
      help: 'Requests queued for a generation slot',
      labelNames: ['model_version'],
      registers,
    }),
    cost: new Counter({
      name: 'bertha_answer_cost_total',
      help: 'Cost of answers in the configured currency (tokens x price for upstream models, compute seconds x price for local ones)',
      labelNames: ['model_version'],
      registers,
    }),
    computeSeconds: new Counter({
      name: 'bertha_compute_seconds_total',
      help: 'Seconds the runtime spent generating answers',
      labelNames: ['model_version'],
      registers,
    }),
  };
}
