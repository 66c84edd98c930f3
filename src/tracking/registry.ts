import { BerthaError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { EventBus } from '../events/index.ts';
import { type ModelBundle, modelBundleSchema } from '../models/index.ts';
import { invalidParameter } from './errors.ts';
import type { AliasChange, RegistryStore } from './registry-store.ts';
import type { ModelVersion } from './registry-types.ts';
import type { KeyValue } from './types.ts';

/** Version tag through which MLflow clients can attach a bundle (JSON) to a version they create. */
export const BUNDLE_TAG = 'bertha.bundle';
export const ALIAS_CHANGED = 'model.alias_changed';

export interface AliasChangedPayload {
  name: string;
  alias: string;
  /** The version the alias now points to; null once the alias was removed. */
  version: string | null;
  previous: string | null;
}

export class BundleInvalidError extends BerthaError {
  constructor(message: string) {
    super('bundle_invalid', message, 422);
  }
}

/** Parses bundle JSON as stored or as a client sent it; the registry version decides `version`. */
export function parseBundle(json: string, version: string): ModelBundle {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new BundleInvalidError(`model bundle of ${version} is not JSON: ${(error as Error).message}`);
  }
  const result = modelBundleSchema.safeParse({ ...(raw as object), version });
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new BundleInvalidError(`model bundle of ${version} is invalid: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return result.data;
}

export interface RegisterBundleInput {
  name: string;
  bundle: Omit<ModelBundle, 'version'> & { version?: string };
  source?: string | undefined;
  runId?: string | undefined;
  description?: string | undefined;
  tags?: KeyValue[] | undefined;
}

/**
 * The model registry as the rest of Bertha sees it: MLflow's registry store, plus model
 * bundles and the `model.alias_changed` event that tells the chat service to swap.
 */
export interface ModelRegistry {
  readonly store: RegistryStore;
  /** Creates a version (and the registered model on first use) that serves `bundle`. */
  registerBundle(input: RegisterBundleInput): Promise<ModelVersion>;
  /** Moves an alias (e.g. `champion`) to a version and publishes `model.alias_changed`. */
  setAlias(name: string, alias: string, version: string): Promise<AliasChange>;
  deleteAlias(name: string, alias: string): Promise<AliasChange>;
  deleteModelVersion(name: string, version: string): Promise<void>;
  deleteRegisteredModel(name: string): Promise<void>;
  /** The bundle a version serves; throws when the version has none. */
  getBundle(name: string, version: string): Promise<ModelBundle>;
  /** The bundle an alias points to, or undefined when the alias is not set. */
  resolveAlias(name: string, alias: string): Promise<ModelBundle | undefined>;
}

export interface ModelRegistryDeps {
  store: RegistryStore;
  bus: EventBus;
  logger: Logger;
}

export function createModelRegistry({ store, bus, logger }: ModelRegistryDeps): ModelRegistry {
  async function announce(changes: AliasChange[]): Promise<void> {
    for (const change of changes) {
      if (change.version === change.previous) continue;
      await bus.publish<AliasChangedPayload>({
        type: ALIAS_CHANGED,
        source: 'registry',
        subject: `${change.name}@${change.alias}`,
        payload: change,
      });
      logger.info({ ...change }, 'model alias changed');
    }
  }

  async function getBundle(name: string, version: string): Promise<ModelBundle> {
    const id = `${name}/${version}`;
    const stored = await store.getBundleJson(name, version);
    if (stored !== null) return parseBundle(stored, id);
    const tag = (await store.getModelVersion(name, version)).tags.find((candidate) => candidate.key === BUNDLE_TAG);
    if (!tag) throw new BundleInvalidError(`model version ${id} has no model bundle`);
    return parseBundle(tag.value, id);
  }

  return {
    store,

    async registerBundle({ name, bundle, source, runId, description, tags }) {
      const probe = parseBundle(JSON.stringify(bundle), `${name}/pending`);
      try {
        await store.getRegisteredModel(name);
      } catch (error) {
        if ((error as { code?: string }).code !== 'RESOURCE_DOES_NOT_EXIST') throw error;
        try {
          await store.createRegisteredModel(name);
        } catch (createError) {
          // Two registrations racing for a new model both land on the one that was created.
          if ((createError as { code?: string }).code !== 'RESOURCE_ALREADY_EXISTS') throw createError;
        }
      }
      const { version: _pending, ...stored } = probe;
      const location = source ?? (probe.base.kind === 'gguf' ? probe.base.path : `upstream:${probe.base.model}`);
      if (!location) throw invalidParameter('a model version needs a source');
      return store.createModelVersion({
        name,
        source: location,
        runId: runId ?? probe.lineage?.runId,
        description,
        tags,
        bundleJson: JSON.stringify(stored),
      });
    },

    async setAlias(name, alias, version) {
      const change = await store.setAlias(name, alias, version);
      await announce([change]);
      return change;
    },

    async deleteAlias(name, alias) {
      const change = await store.deleteAlias(name, alias);
      await announce([change]);
      return change;
    },

    async deleteModelVersion(name, version) {
      await announce(await store.deleteModelVersion(name, version));
    },

    async deleteRegisteredModel(name) {
      await announce(await store.deleteRegisteredModel(name));
    },

    getBundle,

    async resolveAlias(name, alias) {
      let version: ModelVersion;
      try {
        version = await store.getVersionByAlias(name, alias);
      } catch (error) {
        if ((error as { code?: string }).code === 'RESOURCE_DOES_NOT_EXIST') return undefined;
        throw error;
      }
      return getBundle(name, version.version);
    },
  };
}
