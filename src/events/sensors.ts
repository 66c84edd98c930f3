import { createHash } from 'node:crypto';
import { isoNow } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { BerthaEvent, EventBus } from './bus.ts';

/** One sensor: an event type mapped to a pipeline with parameters (Argo Events' Sensor + trigger). */
export interface SensorRule {
  name: string;
  event: string;
  pipeline: string;
  /** Values are templates: `{{subject}}`, `{{type}}`, `{{id}}`, `{{payload.<field>}}`. */
  params: Record<string, string>;
  /** Template; empty means no concurrency limit. */
  concurrencyKey: string;
  debounceMs: number;
}

export type TriggerDecisionStatus = 'pending' | 'skipped' | 'failed';

export interface TriggerDecision {
  id: string;
  sensor: string;
  eventId: string;
  pipeline: string;
  params: Record<string, string>;
  concurrencyKey: string | null;
  status: TriggerDecisionStatus;
  reason: string | null;
  createdAt: string;
}

/**
 * Where sensors record their decisions and look up earlier ones: the pipeline triggers
 * (`createTriggerStore` in src/pipelines implements it; `app.ts` wires it in).
 */
export interface SensorTriggers {
  /** The id of a trigger this sensor recorded since `since`, not skipped or failed, for the same key (or, without one, the same params). */
  recentTrigger(query: {
    sensor: string;
    since: string;
    concurrencyKey: string | null;
    params: Record<string, string>;
  }): Promise<string | undefined>;
  /** The trigger holding a concurrency key: `pending`, or `launched` with its run not finished yet. */
  activeTrigger(concurrencyKey: string): Promise<{ id: string; status: string } | undefined>;
  /** False when a trigger with the decision's id exists already. */
  record(decision: TriggerDecision): Promise<boolean>;
}

export interface Sensors {
  /**
   * Evaluates every rule for the event and records one trigger row per matching rule; returns
   * the decisions recorded now (none for a rule that recorded this event's trigger before).
   */
  handle(event: BerthaEvent): Promise<TriggerDecision[]>;
  /** Subscribes to the bus; returns the unsubscribe function. */
  start(): () => void;
}

class MissingTemplateValue extends Error {}

/** Why a sensor recorded a trigger as `skipped`. */
export type SuppressionReason = 'debounce' | 'concurrency';

/** Counts the triggers this process's sensors suppressed (the loop metrics, wired in app.ts). */
export interface SensorMetrics {
  triggerSuppressed(reason: SuppressionReason): void;
}

/**
 * One trigger per rule and event however often the bus delivers the event, and whichever
 * process handles it: a second `record` of the same id is refused. The event's time-ordered
 * part comes first, so triggers still sort by when their events happened.
 */
function triggerIdFor(rule: SensorRule, event: BerthaEvent): string {
  const ruleHash = createHash('sha256').update(rule.name).digest('hex').slice(0, 8);
  return `trg_${event.id.slice(event.id.indexOf('_') + 1)}_${ruleHash}`;
}

function lookup(event: BerthaEvent, path: string): unknown {
  const [head, ...rest] = path.split('.');
  const root: Record<string, unknown> = {
    id: event.id,
    type: event.type,
    subject: event.subject,
    payload: event.payload,
  };
  let value: unknown = head === undefined ? undefined : root[head];
  for (const key of rest) {
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  }
  return value;
}

/** Replaces `{{path}}` placeholders; a missing or empty value is an error, never a silent blank. */
export function renderTemplate(template: string, event: BerthaEvent): string {
  return template.replace(/\{\{\s*([a-zA-Z0-9_.]+)\s*\}\}/g, (_match, path: string) => {
    const value = lookup(event, path);
    if (value === undefined || value === null || value === '') {
      throw new MissingTemplateValue(`event ${event.id} has no value for {{${path}}}`);
    }
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  });
}

/**
 * Sensors record a pipeline trigger (through `SensorTriggers`) for each event a rule matches:
 * `pending` for the pipeline runner to claim, or `skipped` (debounced, or a run for the same
 * concurrency key is pending or launched) or `failed` (a template had no value), with the
 * reason. Decisions are serialised within the process so two events cannot both pass the
 * concurrency check; across processes the bus's `sensors` group hands each event to one of
 * them, one event of a type at a time.
 */
export function createSensors(options: {
  triggers: SensorTriggers;
  bus: EventBus;
  rules: SensorRule[];
  logger: Logger;
  /** Called after a `pending` trigger is written, so a runner in this process claims it without waiting to poll. */
  onPending?: () => void;
  metrics?: SensorMetrics;
}): Sensors {
  const { triggers, bus, rules, logger } = options;
  let queue: Promise<unknown> = Promise.resolve();

  async function refusal(
    rule: SensorRule,
    key: string | null,
    params: Record<string, string>,
    now: Date,
  ): Promise<{ reason: SuppressionReason; text: string } | null> {
    if (rule.debounceMs > 0) {
      const since = new Date(now.getTime() - rule.debounceMs).toISOString();
      const recent = await triggers.recentTrigger({ sensor: rule.name, since, concurrencyKey: key, params });
      if (recent) {
        return {
          reason: 'debounce',
          text: `debounced: trigger ${recent} was recorded less than ${rule.debounceMs} ms ago`,
        };
      }
    }
    if (key) {
      // Queued (`pending`), or claimed by the runner (`launched`) and its run not finished yet.
      const active = await triggers.activeTrigger(key);
      if (active) {
        return { reason: 'concurrency', text: `concurrency: trigger ${active.id} for ${key} is ${active.status}` };
      }
    }
    return null;
  }

  async function decide(rule: SensorRule, event: BerthaEvent): Promise<TriggerDecision | undefined> {
    const now = new Date();
    const base = {
      id: triggerIdFor(rule, event),
      sensor: rule.name,
      eventId: event.id,
      pipeline: rule.pipeline,
      createdAt: isoNow(),
    };
    let decision: TriggerDecision;
    let suppressed: SuppressionReason | undefined;
    try {
      const params = Object.fromEntries(
        Object.entries(rule.params).map(([name, template]) => [name, renderTemplate(template, event)]),
      );
      const key = rule.concurrencyKey ? renderTemplate(rule.concurrencyKey, event) : null;
      const refused = await refusal(rule, key, params, now);
      suppressed = refused?.reason;
      decision = {
        ...base,
        params,
        concurrencyKey: key,
        status: refused ? 'skipped' : 'pending',
        reason: refused?.text ?? null,
      };
    } catch (error) {
      if (!(error instanceof MissingTemplateValue)) throw error;
      decision = { ...base, params: {}, concurrencyKey: null, status: 'failed', reason: error.message };
    }
    if (!(await triggers.record(decision))) {
      // A redelivery: the first delivery recorded the decision (its handler failed later, or its ack was lost).
      logger.info({ sensor: rule.name, eventId: event.id, triggerId: decision.id }, 'sensor decision already recorded');
      return undefined;
    }
    if (decision.status === 'pending') options.onPending?.();
    if (suppressed) options.metrics?.triggerSuppressed(suppressed);
    const log = decision.status === 'failed' ? logger.warn.bind(logger) : logger.info.bind(logger);
    log(
      {
        sensor: rule.name,
        eventId: event.id,
        triggerId: decision.id,
        status: decision.status,
        reason: decision.reason,
      },
      'sensor decided',
    );
    return decision;
  }

  function handle(event: BerthaEvent): Promise<TriggerDecision[]> {
    const matching = rules.filter((rule) => rule.event === event.type);
    const run = queue.then(async () => {
      const decisions: TriggerDecision[] = [];
      for (const rule of matching) {
        const decision = await decide(rule, event);
        if (decision) decisions.push(decision);
      }
      return decisions;
    });
    queue = run.catch(() => undefined);
    return run;
  }

  return {
    handle,
    start() {
      const types = [...new Set(rules.map((rule) => rule.event))];
      const unsubscribers = types.map((type) =>
        // Grouped: with several processes each event is decided once, by one of them.
        bus.subscribe(
          type,
          async (event) => {
            await handle(event);
          },
          { group: 'sensors' },
        ),
      );
      return () => {
        for (const unsubscribe of unsubscribers) unsubscribe();
      };
    },
  };
}
