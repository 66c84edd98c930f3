import { type Kysely, type RawBuilder, sql, type Transaction } from 'kysely';
import type { Database, MetadataDb, ModelVersionsTable, RegisteredModelsTable } from '../db/index.ts';
import { isUniqueViolation } from '../db/index.ts';
import { alreadyExists, doesNotExist, invalidParameter } from './errors.ts';
import { parseFilter, parseOrderBy } from './filter.ts';
import { startPage } from './paging.ts';
import {
  type CreateModelVersionInput,
  MODEL_STAGES,
  type ModelStage,
  type ModelVersion,
  type RegisteredModel,
  type RegistrySearchInput,
} from './registry-types.ts';
import { compareColumn, toNumber } from './sql.ts';
import type { KeyValue, Page } from './types.ts';
import { validateKey, validateValue } from './validation.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** What an alias pointed to before and after a change; `version` null when the alias is gone. */
export interface AliasChange {
  name: string;
  alias: string;
  version: string | null;
  previous: string | null;
}

export function canonicalStage(stage: string): ModelStage {
  const found = MODEL_STAGES.find((candidate) => candidate.toLowerCase() === stage.toLowerCase());
  if (!found)
    throw invalidParameter(`Invalid Model Version stage: ${stage}. Value must be one of ${MODEL_STAGES.join(', ')}.`);
  return found;
}

/** MLflow reserves `latest` and version-like names (`v1`) (mlflow/utils/validation.py `_validate_model_alias_name`). */
export function validateAlias(alias: string): string {
  if (!alias) throw invalidParameter(`Missing value for required parameter 'alias'`);
  if (alias.toLowerCase() === 'latest') throw invalidParameter(`'${alias}' alias name (case insensitive) is reserved.`);
  if (/^v\d+$/i.test(alias))
    throw invalidParameter(`Version alias name '${alias}' must not take the form 'v<number>'.`);
  if (alias.length > 255 || !/^[\w\-.]+$/.test(alias)) {
    throw invalidParameter(
      `Invalid alias name: '${alias}'. Names may only contain alphanumerics, underscores, dashes and periods.`,
    );
  }
  return alias;
}

function versionNumber(version: string): number {
  if (!/^\d+$/.test(version)) throw invalidParameter(`Model version must be an integer, got '${version}'`);
  return Number(version);
}

export interface RegistryStore {
  createRegisteredModel(
    name: string,
    options?: { tags?: KeyValue[] | undefined; description?: string | undefined },
  ): Promise<RegisteredModel>;
  getRegisteredModel(name: string): Promise<RegisteredModel>;
  renameRegisteredModel(name: string, newName: string): Promise<RegisteredModel>;
  updateRegisteredModel(name: string, description: string | undefined): Promise<RegisteredModel>;
  /** Returns the aliases the deletion removed. */
  deleteRegisteredModel(name: string): Promise<AliasChange[]>;
  searchRegisteredModels(input: RegistrySearchInput): Promise<Page<RegisteredModel>>;
  getLatestVersions(name: string, stages?: string[] | undefined): Promise<ModelVersion[]>;
  setRegisteredModelTag(name: string, tag: KeyValue): Promise<void>;
  deleteRegisteredModelTag(name: string, key: string): Promise<void>;
  createModelVersion(input: CreateModelVersionInput): Promise<ModelVersion>;
  getModelVersion(name: string, version: string): Promise<ModelVersion>;
  /** The stored bundle JSON of a version, if it has one. */
  getBundleJson(name: string, version: string): Promise<string | null>;
  updateModelVersion(name: string, version: string, description: string | undefined): Promise<ModelVersion>;
  deleteModelVersion(name: string, version: string): Promise<AliasChange[]>;
  searchModelVersions(input: RegistrySearchInput): Promise<Page<ModelVersion>>;
  transitionStage(name: string, version: string, stage: string, archiveExisting: boolean): Promise<ModelVersion>;
  setModelVersionTag(name: string, version: string, tag: KeyValue): Promise<void>;
  deleteModelVersionTag(name: string, version: string, key: string): Promise<void>;
  setAlias(name: string, alias: string, version: string): Promise<AliasChange>;
  deleteAlias(name: string, alias: string): Promise<AliasChange>;
  getVersionByAlias(name: string, alias: string): Promise<ModelVersion>;
}

export function createRegistryStore(metadata: MetadataDb): RegistryStore {
  const db = metadata.kysely;
  const dialect = metadata.dialect;

  async function modelRow(executor: Executor, name: string): Promise<RegisteredModelsTable> {
    if (!name) throw invalidParameter(`Missing value for required parameter 'name'`);
    const row = await executor.selectFrom('registered_models').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw doesNotExist(`Registered Model with name=${name} not found`);
    return row;
  }

  async function versionRow(executor: Executor, name: string, version: string): Promise<ModelVersionsTable> {
    const row = await executor
      .selectFrom('model_versions')
      .selectAll()
      .where('name', '=', name)
      .where('version', '=', versionNumber(version))
      .executeTakeFirst();
    if (!row) throw doesNotExist(`Model Version (name=${name}, version=${version}) not found`);
    return row;
  }

  async function hydrateVersions(rows: ModelVersionsTable[]): Promise<ModelVersion[]> {
    if (rows.length === 0) return [];
    const names = [...new Set(rows.map((row) => row.name))];
    const [tags, aliases] = await Promise.all([
      db.selectFrom('model_version_tags').selectAll().where('name', 'in', names).execute(),
      db.selectFrom('registered_model_aliases').selectAll().where('name', 'in', names).orderBy('alias').execute(),
    ]);
    return rows.map((row) => {
      const version: ModelVersion = {
        name: row.name,
        version: String(row.version),
        creation_timestamp: toNumber(row.creation_timestamp),
        last_updated_timestamp: toNumber(row.last_updated_timestamp),
        current_stage: row.current_stage as ModelStage,
        source: row.source,
        status: row.status as ModelVersion['status'],
        tags: tags
          .filter((tag) => tag.name === row.name && Number(tag.version) === Number(row.version))
          .map(({ key, value }) => ({ key, value })),
        aliases: aliases
          .filter((alias) => alias.name === row.name && Number(alias.version) === Number(row.version))
          .map((alias) => alias.alias),
      };
      if (row.user_id !== null) version.user_id = row.user_id;
      if (row.description !== null) version.description = row.description;
      if (row.run_id !== null) version.run_id = row.run_id;
      if (row.run_link !== null) version.run_link = row.run_link;
      if (row.status_message !== null) version.status_message = row.status_message;
      return version;
    });
  }

  async function hydrateModels(rows: RegisteredModelsTable[]): Promise<RegisteredModel[]> {
    if (rows.length === 0) return [];
    const names = rows.map((row) => row.name);
    const [tags, aliases, versions] = await Promise.all([
      db.selectFrom('registered_model_tags').selectAll().where('name', 'in', names).execute(),
      db.selectFrom('registered_model_aliases').selectAll().where('name', 'in', names).orderBy('alias').execute(),
      db.selectFrom('model_versions').selectAll().where('name', 'in', names).where('status', '=', 'READY').execute(),
    ]);
    // latest_versions: the highest version in each stage (MLflow's SqlRegisteredModel.latest_versions).
    const latest = new Map<string, ModelVersionsTable>();
    for (const version of versions) {
      const key = `${version.name}\u0000${version.current_stage}`;
      const current = latest.get(key);
      if (!current || Number(version.version) > Number(current.version)) latest.set(key, version);
    }
    const latestVersions = await hydrateVersions([...latest.values()]);
    return rows.map((row) => {
      const model: RegisteredModel = {
        name: row.name,
        creation_timestamp: toNumber(row.creation_timestamp),
        last_updated_timestamp: toNumber(row.last_updated_timestamp),
        latest_versions: latestVersions
          .filter((version) => version.name === row.name)
          .sort((a, b) => Number(a.version) - Number(b.version)),
        tags: tags.filter((tag) => tag.name === row.name).map(({ key, value }) => ({ key, value })),
        aliases: aliases
          .filter((alias) => alias.name === row.name)
          .map((alias) => ({ alias: alias.alias, version: String(alias.version) })),
      };
      if (row.description !== null) model.description = row.description;
      return model;
    });
  }

  async function getModel(name: string): Promise<RegisteredModel> {
    const [model] = await hydrateModels([await modelRow(db, name)]);
    return model as RegisteredModel;
  }

  async function getVersion(name: string, version: string): Promise<ModelVersion> {
    const [hydrated] = await hydrateVersions([await versionRow(db, name, version)]);
    return hydrated as ModelVersion;
  }

  async function touchModel(executor: Executor, name: string, now: number): Promise<void> {
    await executor
      .updateTable('registered_models')
      .set({ last_updated_timestamp: now })
      .where('name', '=', name)
      .execute();
  }

  function validTags(tags: KeyValue[] | undefined): KeyValue[] {
    const list = tags ?? [];
    for (const tag of list) validateValue('tag', validateKey('tag', tag.key), tag.value);
    return [...new Map(list.map((tag) => [tag.key, tag.value]))].map(([key, value]) => ({ key, value }));
  }

  async function removeAliases(executor: Executor, name: string, version?: number): Promise<AliasChange[]> {
    let query = executor.selectFrom('registered_model_aliases').selectAll().where('name', '=', name);
    if (version !== undefined) query = query.where('version', '=', version);
    const removed = await query.execute();
    let deletion = executor.deleteFrom('registered_model_aliases').where('name', '=', name);
    if (version !== undefined) deletion = deletion.where('version', '=', version);
    await deletion.execute();
    return removed.map((row) => ({ name, alias: row.alias, version: null, previous: String(row.version) }));
  }

  return {
    async createRegisteredModel(name, options = {}) {
      if (!name) throw invalidParameter(`Missing value for required parameter 'name'`);
      const tags = validTags(options.tags);
      const now = Date.now();
      try {
        await db.transaction().execute(async (trx) => {
          await trx
            .insertInto('registered_models')
            .values({
              name,
              description: options.description ?? null,
              creation_timestamp: now,
              last_updated_timestamp: now,
            })
            .execute();
          if (tags.length > 0)
            await trx
              .insertInto('registered_model_tags')
              .values(tags.map((tag) => ({ name, ...tag })))
              .execute();
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw alreadyExists(`Registered Model (name=${name}) already exists.`);
        throw error;
      }
      return getModel(name);
    },

    getRegisteredModel: getModel,

    async renameRegisteredModel(name, newName) {
      if (!newName) throw invalidParameter(`Missing value for required parameter 'new_name'`);
      await modelRow(db, name);
      try {
        await db.transaction().execute(async (trx) => {
          const now = Date.now();
          await trx
            .updateTable('registered_models')
            .set({ name: newName, last_updated_timestamp: now })
            .where('name', '=', name)
            .execute();
          for (const table of [
            'registered_model_tags',
            'model_versions',
            'model_version_tags',
            'registered_model_aliases',
          ] as const) {
            await trx.updateTable(table).set({ name: newName }).where('name', '=', name).execute();
          }
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw alreadyExists(`Registered Model (name=${newName}) already exists.`);
        throw error;
      }
      return getModel(newName);
    },

    async updateRegisteredModel(name, description) {
      await modelRow(db, name);
      await db
        .updateTable('registered_models')
        .set({ description: description ?? null, last_updated_timestamp: Date.now() })
        .where('name', '=', name)
        .execute();
      return getModel(name);
    },

    async deleteRegisteredModel(name) {
      await modelRow(db, name);
      return db.transaction().execute(async (trx) => {
        const removed = await removeAliases(trx, name);
        for (const table of [
          'model_version_tags',
          'model_versions',
          'registered_model_tags',
          'registered_models',
        ] as const) {
          await trx.deleteFrom(table).where('name', '=', name).execute();
        }
        return removed;
      });
    },

    async searchRegisteredModels(input) {
      const page = startPage(input, { fallback: 100, max: 1000 });
      const conditions: RawBuilder<unknown>[] = [sql`1 = 1`];
      for (const comparison of parseFilter(input.filter)) {
        if (comparison.entity === 'attribute' && comparison.key === 'name') {
          conditions.push(compareColumn(sql`m.name`, comparison, 'string', dialect));
        } else if (comparison.entity === 'tag') {
          conditions.push(
            sql`EXISTS (SELECT 1 FROM registered_model_tags t WHERE t.name = m.name AND t.key = ${comparison.key} AND ${compareColumn(sql`t.value`, comparison, 'string', dialect)})`,
          );
        } else {
          throw invalidParameter(
            `Invalid filter key '${comparison.key}' for registered models; expected name or tags.<key>`,
          );
        }
      }
      const order: RawBuilder<unknown>[] = [];
      for (const clause of parseOrderBy(input.orderBy)) {
        const column =
          clause.entity !== 'attribute'
            ? undefined
            : clause.key === 'name'
              ? 'm.name'
              : clause.key === 'last_updated_timestamp' || clause.key === 'timestamp'
                ? 'm.last_updated_timestamp'
                : undefined;
        if (!column)
          throw invalidParameter(
            `Invalid order by key '${clause.key}' specified. Valid keys are 'name', 'timestamp', 'last_updated_timestamp'`,
          );
        order.push(sql`${sql.ref(column)} ${sql.raw(clause.descending ? 'DESC' : 'ASC')}`);
      }
      order.push(sql`m.name ASC`);
      const rows =
        await sql<RegisteredModelsTable>`SELECT m.* FROM registered_models m WHERE ${sql.join(conditions, sql` AND `)} ORDER BY ${sql.join(order)} LIMIT ${page.limit} OFFSET ${page.offset}`.execute(
          db,
        );
      return page.finish(rows.rows, hydrateModels);
    },

    async getLatestVersions(name, stages) {
      const model = await getModel(name);
      if (!stages || stages.length === 0) return model.latest_versions;
      const wanted = new Set(stages.map(canonicalStage));
      return model.latest_versions.filter((version) => wanted.has(version.current_stage));
    },

    async setRegisteredModelTag(name, tag) {
      validateValue('tag', validateKey('tag', tag.key), tag.value);
      await modelRow(db, name);
      await db
        .insertInto('registered_model_tags')
        .values({ name, key: tag.key, value: tag.value })
        .onConflict((oc) => oc.columns(['name', 'key']).doUpdateSet({ value: tag.value }))
        .execute();
    },

    async deleteRegisteredModelTag(name, key) {
      await modelRow(db, name);
      await db.deleteFrom('registered_model_tags').where('name', '=', name).where('key', '=', key).execute();
    },

    async createModelVersion(input) {
      if (!input.source) throw invalidParameter(`Missing value for required parameter 'source'`);
      const tags = validTags(input.tags);
      await modelRow(db, input.name);
      // Version numbers come from max+1; a concurrent create that takes the same number retries.
      for (let attempt = 0; ; attempt++) {
        const now = Date.now();
        try {
          const version = await db.transaction().execute(async (trx) => {
            const top = await trx
              .selectFrom('model_versions')
              .select((eb) => eb.fn.max('version').as('top'))
              .where('name', '=', input.name)
              .executeTakeFirst();
            const next = Number(top?.top ?? 0) + 1;
            await trx
              .insertInto('model_versions')
              .values({
                name: input.name,
                version: next,
                description: input.description ?? null,
                user_id: input.userId ?? null,
                current_stage: 'None',
                source: input.source,
                run_id: input.runId || null,
                run_link: input.runLink || null,
                status: 'READY',
                status_message: null,
                bundle_json: input.bundleJson ?? null,
                creation_timestamp: now,
                last_updated_timestamp: now,
              })
              .execute();
            if (tags.length > 0) {
              await trx
                .insertInto('model_version_tags')
                .values(tags.map((tag) => ({ name: input.name, version: next, ...tag })))
                .execute();
            }
            await touchModel(trx, input.name, now);
            return next;
          });
          return getVersion(input.name, String(version));
        } catch (error) {
          if (!isUniqueViolation(error) || attempt >= 20) throw error;
        }
      }
    },

    getModelVersion: getVersion,

    async getBundleJson(name, version) {
      return (await versionRow(db, name, version)).bundle_json;
    },

    async updateModelVersion(name, version, description) {
      const row = await versionRow(db, name, version);
      await db
        .updateTable('model_versions')
        .set({ description: description ?? null, last_updated_timestamp: Date.now() })
        .where('name', '=', name)
        .where('version', '=', row.version)
        .execute();
      return getVersion(name, version);
    },

    async deleteModelVersion(name, version) {
      const row = await versionRow(db, name, version);
      return db.transaction().execute(async (trx) => {
        const removed = await removeAliases(trx, name, Number(row.version));
        await trx
          .deleteFrom('model_version_tags')
          .where('name', '=', name)
          .where('version', '=', Number(row.version))
          .execute();
        await trx
          .deleteFrom('model_versions')
          .where('name', '=', name)
          .where('version', '=', Number(row.version))
          .execute();
        await touchModel(trx, name, Date.now());
        return removed;
      });
    },

    async searchModelVersions(input) {
      const page = startPage(input, { fallback: 10_000, max: 200_000 });
      const conditions: RawBuilder<unknown>[] = [sql`1 = 1`];
      for (const comparison of parseFilter(input.filter)) {
        if (comparison.entity === 'tag') {
          conditions.push(
            sql`EXISTS (SELECT 1 FROM model_version_tags t WHERE t.name = v.name AND t.version = v.version AND t.key = ${comparison.key} AND ${compareColumn(sql`t.value`, comparison, 'string', dialect)})`,
          );
          continue;
        }
        const columns: Record<string, { column: RawBuilder<unknown>; kind: 'string' | 'number' }> = {
          name: { column: sql`v.name`, kind: 'string' },
          run_id: { column: sql`v.run_id`, kind: 'string' },
          source_path: { column: sql`v.source`, kind: 'string' },
          version_number: { column: sql`v.version`, kind: 'number' },
        };
        const target = comparison.entity === 'attribute' ? columns[comparison.key] : undefined;
        if (!target) {
          throw invalidParameter(
            `Invalid filter key '${comparison.key}' for model versions; expected name, run_id, source_path, version_number or tags.<key>`,
          );
        }
        conditions.push(compareColumn(target.column, comparison, target.kind, dialect));
      }
      const order: RawBuilder<unknown>[] = [];
      for (const clause of parseOrderBy(input.orderBy)) {
        const columns: Record<string, string> = {
          name: 'v.name',
          version_number: 'v.version',
          creation_timestamp: 'v.creation_timestamp',
          last_updated_timestamp: 'v.last_updated_timestamp',
          timestamp: 'v.last_updated_timestamp',
        };
        const column = clause.entity === 'attribute' ? columns[clause.key] : undefined;
        if (!column) throw invalidParameter(`Invalid order by key '${clause.key}' for model versions`);
        order.push(sql`${sql.ref(column)} ${sql.raw(clause.descending ? 'DESC' : 'ASC')}`);
      }
      if (order.length === 0) order.push(sql`v.last_updated_timestamp DESC`);
      order.push(sql`v.name ASC`, sql`v.version DESC`);
      const rows =
        await sql<ModelVersionsTable>`SELECT v.* FROM model_versions v WHERE ${sql.join(conditions, sql` AND `)} ORDER BY ${sql.join(order)} LIMIT ${page.limit} OFFSET ${page.offset}`.execute(
          db,
        );
      return page.finish(rows.rows, hydrateVersions);
    },

    async transitionStage(name, version, stage, archiveExisting) {
      const target = canonicalStage(stage);
      if (archiveExisting && target !== 'Staging' && target !== 'Production') {
        throw invalidParameter(
          `Model version transition cannot archive existing model versions because '${target}' is not an Active stage. Valid stages are Staging, Production`,
        );
      }
      const row = await versionRow(db, name, version);
      const now = Date.now();
      await db.transaction().execute(async (trx) => {
        if (archiveExisting) {
          await trx
            .updateTable('model_versions')
            .set({ current_stage: 'Archived', last_updated_timestamp: now })
            .where('name', '=', name)
            .where('current_stage', '=', target)
            .where('version', '!=', Number(row.version))
            .execute();
        }
        await trx
          .updateTable('model_versions')
          .set({ current_stage: target, last_updated_timestamp: now })
          .where('name', '=', name)
          .where('version', '=', Number(row.version))
          .execute();
        await touchModel(trx, name, now);
      });
      return getVersion(name, version);
    },

    async setModelVersionTag(name, version, tag) {
      validateValue('tag', validateKey('tag', tag.key), tag.value);
      const row = await versionRow(db, name, version);
      await db
        .insertInto('model_version_tags')
        .values({ name, version: Number(row.version), key: tag.key, value: tag.value })
        .onConflict((oc) => oc.columns(['name', 'version', 'key']).doUpdateSet({ value: tag.value }))
        .execute();
    },

    async deleteModelVersionTag(name, version, key) {
      const row = await versionRow(db, name, version);
      await db
        .deleteFrom('model_version_tags')
        .where('name', '=', name)
        .where('version', '=', Number(row.version))
        .where('key', '=', key)
        .execute();
    },

    async setAlias(name, alias, version) {
      validateAlias(alias);
      const row = await versionRow(db, name, version);
      return db.transaction().execute(async (trx) => {
        const previous = await trx
          .selectFrom('registered_model_aliases')
          .select('version')
          .where('name', '=', name)
          .where('alias', '=', alias)
          .executeTakeFirst();
        await trx
          .insertInto('registered_model_aliases')
          .values({ name, alias, version: Number(row.version), updated_at: new Date().toISOString() })
          .onConflict((oc) =>
            oc
              .columns(['name', 'alias'])
              .doUpdateSet({ version: Number(row.version), updated_at: new Date().toISOString() }),
          )
          .execute();
        await touchModel(trx, name, Date.now());
        return { name, alias, version: String(row.version), previous: previous ? String(previous.version) : null };
      });
    },

    async deleteAlias(name, alias) {
      await modelRow(db, name);
      return db.transaction().execute(async (trx) => {
        const previous = await trx
          .selectFrom('registered_model_aliases')
          .select('version')
          .where('name', '=', name)
          .where('alias', '=', alias)
          .executeTakeFirst();
        await trx.deleteFrom('registered_model_aliases').where('name', '=', name).where('alias', '=', alias).execute();
        return { name, alias, version: null, previous: previous ? String(previous.version) : null };
      });
    },

    async getVersionByAlias(name, alias) {
      await modelRow(db, name);
      const row = await db
        .selectFrom('registered_model_aliases')
        .select('version')
        .where('name', '=', name)
        .where('alias', '=', alias)
        .executeTakeFirst();
      if (!row) throw doesNotExist(`Registered model alias ${alias} not found.`);
      return getVersion(name, String(row.version));
    },
  };
}
