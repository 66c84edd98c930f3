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

export interface EventFilter {
  type?: string | undefined;
  subject?: string | undefined;
  /** Only events created at or after this ISO time. */
  since?: string | undefined;
  /** Only events with an id lower than this one (paging backwards). */
  before?: string | undefined;
  limit?: number | undefined;
}

/**
 * The event bus port. Every event is stored before subscribers see it, so the record of
 * what happened survives a crash even when a subscriber did not get to run.
 */
export interface EventBus {
  publish<Payload>(input: PublishInput<Payload>): Promise<PublishResult<Payload>>;
  /** `type` may be `*` for every event. Returns the unsubscribe function. */
  subscribe(type: string, handler: EventHandler): () => void;
  list(filter?: EventFilter): Promise<BerthaEvent[]>;
  get(id: string): Promise<BerthaEvent | undefined>;
  /** Resolves when every dispatched handler has settled (used by shutdown and tests). */
  drain(): Promise<void>;
}
