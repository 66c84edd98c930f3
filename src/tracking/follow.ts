import type { Logger } from '../core/logger.ts';
import type { EventBus } from '../events/index.ts';
import type { ModelBundle } from '../models/index.ts';
import { ALIAS_CHANGED, type AliasChangedPayload, type ModelRegistry } from './registry.ts';

export interface FollowAliasOptions {
  registry: ModelRegistry;
  bus: EventBus;
  logger: Logger;
  /** Registered model name, e.g. `bertha-chat`. */
  model: string;
  /** Usually `champion`. */
  alias: string;
  /** Called with the bundle the alias points to: at start when it is set, then on every move. */
  onBundle(bundle: ModelBundle): Promise<void>;
}

/**
 * Keeps a consumer (the chat service) on the bundle an alias points to; `started` settles once
 * the bundle set at start-up (if any) was handed over. A move that cannot be
 * resolved or loaded is logged and leaves the consumer on what it served before.
 */
export function followAlias(options: FollowAliasOptions): { stop(): void; started: Promise<void> } {
  const { registry, bus, logger, model, alias, onBundle } = options;
  async function apply(reason: string): Promise<void> {
    try {
      const bundle = await registry.resolveAlias(model, alias);
      if (!bundle) {
        logger.info({ model, alias, reason }, 'alias not set; keeping the current bundle');
        return;
      }
      await onBundle(bundle);
      logger.info({ model, alias, version: bundle.version, reason }, 'serving the bundle the alias points to');
    } catch (error) {
      logger.error({ err: error, model, alias, reason }, 'could not switch to the bundle the alias points to');
    }
  }
  const unsubscribe = bus.subscribe(ALIAS_CHANGED, async (event) => {
    const payload = event.payload as AliasChangedPayload;
    if (payload.name === model && payload.alias === alias) await apply(`moved to ${payload.version ?? 'nothing'}`);
  });
  // Loading a model can take a while: start-up does not wait for it.
  return { stop: unsubscribe, started: apply('start') };
}
