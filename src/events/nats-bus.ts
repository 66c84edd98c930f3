import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamInfo,
} from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { UnavailableError, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import type { BerthaEvent, EventBus, EventHandler } from './bus.ts';
import { createDispatcher } from './dispatcher.ts';
import { createEventRows } from './event-rows.ts';

export interface NatsEventBusOptions {
  db: MetadataDb;
  logger: Logger;
  /** NATS URLs, e.g. `nats://127.0.0.1:4222`. */
  servers: string[];
  /** The JetStream stream holding the events; created, or updated to this shape, at start. */
  stream?: string;
  /** Events of type `t` are published on `<subjectPrefix>.t`. */
  subjectPrefix?: string;
  /** How long the stream keeps an event for a group whose every process is down. */
  maxAgeMs?: number;
  /** A grouped handler that threw gets the event again after this, doubled per attempt (at most a minute). */
  retryDelayMs?: number;
  /** Deliveries of one event to a group before it is given up, with an error in the log. */
  maxDeliver?: number;
  /** How long `drain` waits for other processes' grouped handlers before it logs what lags and returns. */
  drainTimeoutMs?: number;
  /**
   * How often stored events NATS did not accept are sent again (the outbox), and how old one
   * must be first, so a publish still in flight is not raced.
   */
  outboxIntervalMs?: number;
}

/**
 * JetStream's duplicate window: a publish with a `Nats-Msg-Id` seen this recently is dropped.
 * A repeated publish of a stored event within it is sent again, and so is one the outbox
 * holds: whichever send NATS took first delivers it, once.
 */
const DUPLICATE_WINDOW_MS = 120_000;
/** A grouped handler still running signals progress at a third of this, so only a dead process's events move on. */
const ACK_WAIT_MS = 30_000;
const MAX_RETRY_DELAY_MS = 60_000;
const RESUBSCRIBE_DELAY_MS = 2_000;
const DRAIN_POLL_MS = 25;
/** Unsent events the outbox reads per query. */
const OUTBOX_BATCH = 100;
/** nats-server's JSStreamNameExistErr: the stream exists with another configuration. */
const STREAM_NAME_IN_USE = 10058;
/** Event types are dotted names; each part becomes one token of the NATS subject. */
const EVENT_TYPE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const GROUP = /^[A-Za-z0-9_-]+$/;

/** A group's share of one event type: the durable consumer every process of the group reads. */
interface SharedSubscription {
  type: string;
  group: string;
  handler: EventHandler;
  consumerName: string;
  /** The stream sequence of the last event published here that the group must handle. */
  awaited: number;
  messages: ConsumerMessages | undefined;
  stopped: boolean;
  loop: Promise<void>;
}

/**
 * EventBus on NATS JetStream, for several Bertha processes. Events are stored in the metadata
 * DB first, exactly as the local bus stores them (dedupe, `list`, `get`), then published to
 * one stream with the event id as `Nats-Msg-Id`. Handlers run on deliveries from JetStream,
 * so every process sees what any process published. A grouped subscription reads a durable
 * consumer the group shares: each event runs one process's handler, acknowledged after it
 * resolved and redelivered after a throw or a crash. The other handlers of a process are
 * fed, as on the local bus, from one ordered consumer of its own that starts at new events
 * when the bus opens.
 */
export async function createNatsEventBus(options: NatsEventBusOptions): Promise<EventBus> {
  const { logger } = options;
  const streamName = options.stream ?? 'BERTHA_EVENTS';
  const prefix = options.subjectPrefix ?? 'bertha.events';
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const maxDeliver = options.maxDeliver ?? 10;
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  const outboxIntervalMs = options.outboxIntervalMs ?? 5_000;
  const maxAgeMs = options.maxAgeMs ?? 7 * 24 * 3_600_000;
  // JetStream refuses a duplicate window longer than the stream keeps its messages.
  const duplicateWindowMs = Math.min(DUPLICATE_WINDOW_MS, maxAgeMs);

  const nc = await connect({ servers: options.servers, name: 'bertha', maxReconnectAttempts: -1 }).catch(
    (error: unknown) => {
      throw new UnavailableError(
        `NATS is not reachable at ${options.servers.join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
      );
    },
  );
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') logger.warn({ status }, `nats ${status.type}`);
    }
  })();
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);

  const rows = createEventRows(options.db, { outbox: true });
  const dispatcher = createDispatcher(logger);
  const shared = new Set<SharedSubscription>();
  /** Grouped handlers' runs not settled yet. */
  const inFlight = new Set<Promise<void>>();
  const publishes = new Set<Promise<unknown>>();
  const closing = new AbortController();
  const opened = await ensureStream().catch(async (error: unknown) => {
    await nc.close();
    throw error;
  });
  /**
   * Stream sequences: the last event published here, and the last one this process's own
   * reader dispatched (at first, the last one stored before the bus opened).
   */
  let lastPublished = 0;
  let lastDispatched = opened.state.last_seq;
  let ownMessages: ConsumerMessages | undefined;
  const ownLoop = readOwn();
  const outboxLoop = relayOutbox();

  async function ensureStream(): Promise<StreamInfo> {
    const config = {
      name: streamName,
      subjects: [`${prefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(maxAgeMs),
      duplicate_window: nanos(duplicateWindowMs),
    };
    try {
      return await jsm.streams.add(config);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE)) throw error;
      return jsm.streams.update(streamName, config);
    }
  }

  function subjectOf(type: string): string {
    return type === '*' ? `${prefix}.>` : `${prefix}.${type}`;
  }

  function checkType(type: string): void {
    if (!EVENT_TYPE.test(type)) throw new ValidationError(`event type '${type}' is not a dotted name`);
  }

  /** Readable in `nats consumer ls`; the hash keeps `a.b` and `a_b` apart. */
  function consumerNameOf(group: string, type: string): string {
    const hash = createHash('sha256').update(type).digest('hex').slice(0, 8);
    return `${group}_${type === '*' ? 'all' : type.replaceAll('.', '_')}_${hash}`;
  }

  /**
   * Publishes a stored event. A refusal is not the publisher's error: the event is stored, so
   * it stays in the outbox and goes out once NATS takes it. False when it was not sent.
   */
  async function send(event: BerthaEvent): Promise<boolean> {
    let seq: number;
    try {
      // `payload` as stored (`null` for none), so handlers see what `get` returns.
      const message = JSON.stringify({ ...event, payload: event.payload ?? null });
      ({ seq } = await js.publish(subjectOf(event.type), message, { msgID: event.id }));
    } catch (error) {
      logger.warn(
        { err: error, eventId: event.id, eventType: event.type },
        'NATS did not accept the event; it is stored and the outbox sends it again',
      );
      return false;
    }
    lastPublished = Math.max(lastPublished, seq);
    for (const subscription of shared) {
      if (subscription.type === event.type || subscription.type === '*') {
        subscription.awaited = Math.max(subscription.awaited, seq);
      }
    }
    // Unmarked, it is sent again later and JetStream or the handlers' dedupe keys drop the repeat.
    await rows
      .markSent(event.id)
      .catch((error: unknown) => logger.warn({ err: error, eventId: event.id }, 'a sent event was not marked sent'));
    return true;
  }

  /** Sends what NATS refused earlier, oldest first, until it refuses again. Any process may do it. */
  async function relayOutbox(): Promise<void> {
    while (!closing.signal.aborted) {
      await sleep(outboxIntervalMs, undefined, { signal: closing.signal }).catch(() => undefined);
      try {
        const before = new Date(Date.now() - outboxIntervalMs).toISOString();
        for (const event of await rows.unsent(before, OUTBOX_BATCH)) {
          if (closing.signal.aborted || !(await send(event))) break;
          logger.info({ eventId: event.id, eventType: event.type }, 'event sent from the outbox');
        }
      } catch (error) {
        if (!closing.signal.aborted) logger.error({ err: error }, 'reading the event outbox failed');
      }
    }
  }

  function track(work: Promise<void>): Promise<void> {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
    return work;
  }

  function parse(message: JsMsg): BerthaEvent | undefined {
    try {
      return message.json<BerthaEvent>();
    } catch (error) {
      logger.error({ err: error, subject: message.subject, seq: message.seq }, 'event message is not JSON; dropped');
      return undefined;
    }
  }

  /** Every event, for this process's ungrouped handlers; after a failure it resumes behind the last one. */
  async function readOwn(): Promise<void> {
    while (!closing.signal.aborted) {
      try {
        const consumer = await js.consumers.get(streamName, {
          filter_subjects: subjectOf('*'),
          opt_start_seq: lastDispatched + 1,
        });
        ownMessages = await consumer.consume();
        if (closing.signal.aborted) await ownMessages.close();
        for await (const message of ownMessages) {
          const event = parse(message);
          if (event) dispatcher.dispatch(event);
          lastDispatched = message.seq;
        }
      } catch (error) {
        if (closing.signal.aborted) return;
        logger.error({ err: error }, 'reading the event stream failed; reading again');
        await sleep(RESUBSCRIBE_DELAY_MS, undefined, { signal: closing.signal }).catch(() => undefined);
      }
    }
  }

  /** Acknowledged only after the handler resolved, so its writes are committed before the event counts as done. */
  async function handleShared(subscription: SharedSubscription, message: JsMsg): Promise<void> {
    const event = parse(message);
    if (!event) return message.term();
    const attempt = message.info.deliveryCount;
    const log = { eventId: event.id, eventType: event.type, group: subscription.group, attempt };
    const progress = setInterval(() => message.working(), ACK_WAIT_MS / 3);
    try {
      await subscription.handler(event);
    } catch (error) {
      if (attempt >= maxDeliver) {
        message.term();
        logger.error({ ...log, err: error }, `event handler failed ${attempt} times; giving the event up`);
      } else {
        message.nak(Math.min(retryDelayMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS));
        logger.error({ ...log, err: error }, 'event handler failed; the event will be redelivered');
      }
      return;
    } finally {
      clearInterval(progress);
    }
    await message.ackAck().catch((error: unknown) => {
      logger.warn({ ...log, err: error }, 'acknowledgement not confirmed; the event may be handled again');
    });
  }

  /** The group's durable consumer; a new one starts where the first subscriber subscribed. */
  async function sharedConsumer(subscription: SharedSubscription, since: string): Promise<Consumer> {
    const name = subscription.consumerName;
    try {
      return await js.consumers.get(streamName, name);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound)) throw error;
    }
    await jsm.consumers
      .add(streamName, {
        durable_name: name,
        filter_subject: subjectOf(subscription.type),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: since,
        ack_wait: nanos(ACK_WAIT_MS),
        max_deliver: maxDeliver,
        // One event of the type at a time in the whole group, in stream order: checks a handler
        // makes against earlier decisions (the sensors' debounce) see them, as in one process.
        max_ack_pending: 1,
        // A group none of whose processes came back within the stream's keeping time has nothing
        // left to resume: its consumer goes with its events instead of staying forever.
        inactive_threshold: nanos(maxAgeMs),
      })
      .catch((error: unknown) => {
        // Another process may have created it first: theirs is the one to share.
        logger.debug({ err: error, consumer: name }, 'durable consumer not created here');
      });
    return js.consumers.get(streamName, name);
  }

  async function readShared(subscription: SharedSubscription): Promise<void> {
    const since = new Date().toISOString();
    while (!subscription.stopped) {
      try {
        const consumer = await sharedConsumer(subscription, since);
        const messages = await consumer.consume({ max_messages: 1 });
        subscription.messages = messages;
        if (subscription.stopped) await messages.close();
        for await (const message of messages) await track(handleShared(subscription, message));
      } catch (error) {
        if (subscription.stopped) return;
        logger.error(
          { err: error, eventType: subscription.type, group: subscription.group },
          'event subscription failed; subscribing again',
        );
        await sleep(RESUBSCRIBE_DELAY_MS, undefined, { signal: closing.signal }).catch(() => undefined);
      }
    }
  }

  async function stopShared(subscription: SharedSubscription): Promise<void> {
    subscription.stopped = true;
    shared.delete(subscription);
    await subscription.messages?.close();
  }

  /** What has not yet seen the events published here: this process's reader, or a group. */
  async function lagging(): Promise<string[]> {
    const groups = await Promise.all(
      [...shared].map(async (subscription) => {
        if (subscription.awaited === 0) return undefined;
        const info = await jsm.consumers.info(streamName, subscription.consumerName).catch(() => undefined);
        return info && info.ack_floor.stream_seq >= subscription.awaited ? undefined : subscription.consumerName;
      }),
    );
    const behind = groups.filter((name): name is string => name !== undefined);
    return lastDispatched < lastPublished ? ['(this process)', ...behind] : behind;
  }

  async function settle(): Promise<void> {
    while (publishes.size > 0 || inFlight.size > 0) await Promise.allSettled([...publishes, ...inFlight]);
    await dispatcher.settled();
  }

  return {
    publish(input) {
      const published = (async () => {
        if (closing.signal.aborted) throw new UnavailableError('the event bus is closed');
        checkType(input.type);
        return rows.store(
          input,
          async (event) => void (await send(event)),
          (stored) => Date.now() - Date.parse(stored.createdAt) < duplicateWindowMs,
        );
      })();
      publishes.add(published);
      void published.finally(() => publishes.delete(published)).catch(() => undefined);
      return published;
    },

    subscribe(type, handler, subscribeOptions = {}) {
      if (type !== '*') checkType(type);
      const { group } = subscribeOptions;
      if (group === undefined) return dispatcher.subscribe(type, handler);
      if (!GROUP.test(group)) {
        throw new ValidationError(`subscription group '${group}' may hold only letters, digits, '_' and '-'`);
      }
      const subscription: SharedSubscription = {
        type,
        group,
        handler,
        consumerName: consumerNameOf(group, type),
        awaited: 0,
        messages: undefined,
        stopped: false,
        loop: Promise.resolve(),
      };
      shared.add(subscription);
      subscription.loop = readShared(subscription);
      return () => void stopShared(subscription);
    },

    list: (filter) => rows.list(filter),
    get: (id) => rows.get(id),

    async drain() {
      const deadline = Date.now() + drainTimeoutMs;
      for (;;) {
        await settle();
        const behind = await lagging();
        if (behind.length === 0) return;
        if (Date.now() >= deadline) {
          logger.warn({ subscriptions: behind }, 'drain gave up waiting for the events published here to be handled');
          return;
        }
        await sleep(DRAIN_POLL_MS);
      }
    },

    async close() {
      if (closing.signal.aborted) return;
      closing.abort();
      const stopping = [...shared];
      await Promise.all([ownMessages?.close(), ...stopping.map(stopShared)]);
      await Promise.allSettled([ownLoop, outboxLoop, ...stopping.map((subscription) => subscription.loop)]);
      dispatcher.clear();
      await settle();
      // Draining needs the server; with NATS down there is nothing left to flush to it.
      await nc.drain().catch(() => nc.close());
    },
  };
}
