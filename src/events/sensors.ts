import { isoNow, newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
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

export type TriggerStatus = 'pending' | 'skipped' | 'failed';

export interface TriggerDecision {
  id: string;
  sensor: string;
  eventId: string;
  pipeline: string;
  params: Record<string, string>;
  concurrencyKey: string | null;
  status: TriggerStatus;
  reason: string | null;
  createdAt: string;
}

export interface Sensors {
  /** Evaluates every rule for the event and records one trigger row per matching rule. */
  handle(event: BerthaEvent): Promise<TriggerDecision[]>;
  /** Subscribes to the bus; returns the unsubscribe function. */
  start(): () => void;
}

class MissingTemplateValue extends Error {}

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
 * Sensors record a `pipeline_triggers` row for each event a rule matches: `pending` for the
 * pipeline runner to claim, or `skipped` (debounced, or a run for the same concurrency key
 * is pending or launched) or `failed` (a template had no value), with the reason. Decisions
 * are serialised within the process so two events cannot both pass the concurrency check.
 */
export function createSensors(options: {
  db: MetadataDb;
  bus: EventBus;
  rules: SensorRule[];
  logger: Logger;
  /** Called after a `pending` trigger is written, so a runner in this process claims it without waiting to poll. */
  onPending?: () => void;
}): Sensors {
  const { db, bus, rules, logger } = options;
  let queue: Promise<unknown> = Promise.resolve();

  async function refusal(rule: SensorRule, key: string | null, params: string, now: Date): Promise<string | null> {
    if (rule.debounceMs > 0) {
      const since = new Date(now.getTime() - rule.debounceMs).toISOString();
      let recent = db.kysely
        .selectFrom('pipeline_triggers')
        .select(['id'])
        .where('sensor', '=', rule.name)
        .where('status', 'not in', ['skipped', 'failed'])
        .where('created_at', '>=', since);
      recent = key ? recent.where('concurrency_key', '=', key) : recent.where('params_json', '=', params);
      const hit = await recent.executeTakeFirst();
      if (hit) return `debounced: trigger ${hit.id} was recorded less than ${rule.debounceMs} ms ago`;
    }
    if (key) {
      // Queued (`pending`), or claimed by the runner (`launched`) and its run not finished yet.
      const active = await db.kysely
        .selectFrom('pipeline_triggers')
        .leftJoin('pipeline_runs', 'pipeline_runs.id', 'pipeline_triggers.run_id')
        .select(['pipeline_triggers.id', 'pipeline_triggers.status'])
        .where('pipeline_triggers.concurrency_key', '=', key)
        .where((eb) =>
          eb.or([
            eb('pipeline_triggers.status', '=', 'pending'),
            eb.and([eb('pipeline_triggers.status', '=', 'launched'), eb('pipeline_runs.finished_at', 'is', null)]),
          ]),
        )
        .executeTakeFirst();
      if (active) return `concurrency: trigger ${active.id} for ${key} is ${active.status}`;
    }
    return null;
  }

  async function decide(rule: SensorRule, event: BerthaEvent): Promise<TriggerDecision> {
    const now = new Date();
    const base = {
      id: newId('trg'),
      sensor: rule.name,
      eventId: event.id,
      pipeline: rule.pipeline,
      createdAt: isoNow(),
    };
    let decision: TriggerDecision;
    try {
      const params = Object.fromEntries(
        Object.entries(rule.params).map(([name, template]) => [name, renderTemplate(template, event)]),
      );
      const key = rule.concurrencyKey ? renderTemplate(rule.concurrencyKey, event) : null;
      const reason = await refusal(rule, key, JSON.stringify(params), now);
      decision = { ...base, params, concurrencyKey: key, status: reason ? 'skipped' : 'pending', reason };
    } catch (error) {
      if (!(error instanceof MissingTemplateValue)) throw error;
      decision = { ...base, params: {}, concurrencyKey: null, status: 'failed', reason: error.message };
    }
    await db.kysely
      .insertInto('pipeline_triggers')
      .values({
        id: decision.id,
        sensor: decision.sensor,
        event_id: decision.eventId,
        pipeline: decision.pipeline,
        params_json: JSON.stringify(decision.params),
        concurrency_key: decision.concurrencyKey,
        status: decision.status,
        reason: decision.reason,
        run_id: null,
        created_at: decision.createdAt,
        updated_at: decision.createdAt,
      })
      .execute();
    if (decision.status === 'pending') options.onPending?.();
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
      for (const rule of matching) decisions.push(await decide(rule, event));
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
        bus.subscribe(type, async (event) => {
          await handle(event);
        }),
      );
      return () => {
        for (const unsubscribe of unsubscribers) unsubscribe();
      };
    },
  };
}
