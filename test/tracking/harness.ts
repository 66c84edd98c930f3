import path from 'node:path';
import { onTestFinished } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { BerthaEvent, EventBus } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { createHttpServer } from '../../src/server/http.ts';
import {
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  type ModelRegistry,
  registerModelBundleRoutes,
  registerTrackingRoutes,
} from '../../src/tracking/index.ts';
import type { DbFactory } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';

export interface TrackingServer {
  url: string;
  registry: ModelRegistry;
  bus: EventBus;
  events: BerthaEvent[];
  /** One MLflow REST call: the parsed JSON body and the HTTP status. */
  api(
    method: string,
    endpoint: string,
    message?: Record<string, unknown>,
    // biome-ignore lint/suspicious/noExplicitAny: tests read MLflow's JSON answers field by field
  ): Promise<{ status: number; body: Record<string, any> }>;
}

/** The tracking routes on a real HTTP server (port 0) over a fresh database of the given kind. */
export async function startTrackingServer(factory: DbFactory): Promise<TrackingServer> {
  const db = await factory.create();
  const logger = createLogger('silent');
  const bus = createLocalEventBus({ db, logger });
  const events: BerthaEvent[] = [];
  bus.subscribe('model.alias_changed', (event) => {
    events.push(event);
  });
  const objects = createFsObjectStore({ root: path.join(tempDir(), 'objects') });
  const http = createHttpServer({ logger, bodyLimitBytes: 8 * 1024 * 1024 });
  const registry = createModelRegistry({ store: createRegistryStore(db), bus, logger });
  registerTrackingRoutes(http, { tracking: createTrackingStore(db), registry, objects });
  registerModelBundleRoutes(http, registry);
  const url = await http.listen({ host: '127.0.0.1', port: 0 });
  onTestFinished(async () => {
    await http.close();
    await bus.drain();
    await db.close();
  });
  return {
    url,
    registry,
    bus,
    events,
    async api(method, endpoint, message = {}) {
      let target = `${url}/api/2.0/mlflow/${endpoint}`;
      let body: string | undefined;
      if (method === 'GET') {
        const query = new URLSearchParams();
        for (const [key, value] of Object.entries(message)) {
          for (const item of Array.isArray(value) ? value : [value]) query.append(key, String(item));
        }
        target += `?${query}`;
      } else {
        body = JSON.stringify(message);
      }
      const response = await fetch(target, {
        method,
        ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : {} };
    },
  };
}
