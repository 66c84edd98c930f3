import type { NewestFirstPage } from '../core/paging.ts';

/** Something that happened that other parts of the loop react to: an alert, an upload, a run finishing. */
export interface BerthaEvent<Payload = unknown> {
  id: string;
  /** Dotted name, e.g. `model.degraded`, `object.created`. */
  type: string;
  /** Who produced it, e.g. `alertmanager`, `s3`, `watcher`. */
  source: string;
  /** What it is about (a model version, an object key), for filtering. */
  subject: string | null;
  dedupeKey: string | null;
  payload: Payload;
  createdAt: string;
}

export interface PublishInput<Payload = unknown> {
  type: string;
  source: string;
  subject?: string | null;
  /** A second publish with the same key is recognised as a redelivery and not dispatched again. */
  dedupeKey?: string | null;
  payload: Payload;
}

export interface PublishResult<Payload = unknown> {
  event: BerthaEvent<Payload>;
  duplicate: boolean;
}

export type EventHandler = (event: BerthaEvent) => void | Promise<void>;

export interface SubscribeOptions {
  /**
   * Handlers subscribed under the same group and type share the work: each event runs one of
   * them in the whole deployment, one event of the type at a time (at least once: a throw
   * means a later redelivery). Without a group, every process's handler runs for every event.
   * One process has nothing to share.
   */
  group?: string | undefined;
}

export interface EventFilter extends NewestFirstPage {
  type?: string | undefined;
  subject?: string | undefined;
  /** Only events created at or after this ISO time. */
  since?: string | undefined;
  /**
   * Only events with an id greater than this one (paging forwards, and a stream client's
   * `Last-Event-ID`); the list is then oldest first.
   */
  after?: string | undefined;
}

/**
 * The event bus port. Every event is stored before subscribers see it, so the record of
 * what happened survives a crash even when a subscriber did not get to run. The events one
 * process publishes reach subscribers in strictly increasing id order, and it never stores
 * an event after one with a greater id: a reader that resumes after an id misses nothing.
 */
export interface EventBus {
  publish<Payload>(input: PublishInput<Payload>): Promise<PublishResult<Payload>>;
  /** `type` may be `*` for every event. Returns the unsubscribe function. */
  subscribe(type: string, handler: EventHandler, options?: SubscribeOptions): () => void;
  list(filter?: EventFilter): Promise<BerthaEvent[]>;
  get(id: string): Promise<BerthaEvent | undefined>;
  /**
   * Resolves when the events this process published have reached its subscribers and every
   * handler has settled (used by shutdown, the CLI and tests).
   */
  drain(): Promise<void>;
  /** Stops delivery and lets in-flight handlers settle; the bus is unusable after. */
  close(): Promise<void>;
}
