import type { Kysely, Migration } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';
import * as events from './0001_events.ts';
import * as pipelineTriggers from './0002_pipeline_triggers.ts';
import * as answers from './0010_answers.ts';
import * as answerCachedTokens from './0011_answer_cached_tokens.ts';
import * as answerTrimmed from './0012_answer_trimmed.ts';
import * as feedback from './0020_feedback.ts';
import * as knowledge from './0030_knowledge.ts';
import * as objectSnapshots from './0031_object_snapshots.ts';
import * as pipelines from './0040_pipelines.ts';
import * as tracking from './0050_tracking.ts';
import * as modelRegistry from './0051_model_registry.ts';
import * as apiKeys from './0070_api_keys.ts';
import * as rollouts from './0080_rollouts.ts';
import * as evalJudgements from './0090_eval_judgements.ts';
import * as leases from './0100_leases.ts';
import * as lineage from './0110_lineage.ts';
import * as answerProvenance from './0120_answer_provenance.ts';
import * as eventOutbox from './0130_event_outbox.ts';

interface DialectMigration {
  up(db: Kysely<unknown>, dialect: SqlDialectName): Promise<void>;
}

/**
 * The one ordered list of schema migrations, applied to SQLite and PostgreSQL alike.
 * Names sort in application order; a migration is never edited once it has shipped.
 */
const ordered: Record<string, DialectMigration> = {
  '0001_events': events,
  '0002_pipeline_triggers': pipelineTriggers,
  '0010_answers': answers,
  '0011_answer_cached_tokens': answerCachedTokens,
  '0012_answer_trimmed': answerTrimmed,
  '0020_feedback': feedback,
  '0030_knowledge': knowledge,
  '0031_object_snapshots': objectSnapshots,
  '0040_pipelines': pipelines,
  '0050_tracking': tracking,
  '0051_model_registry': modelRegistry,
  '0070_api_keys': apiKeys,
  '0080_rollouts': rollouts,
  '0090_eval_judgements': evalJudgements,
  '0100_leases': leases,
  '0110_lineage': lineage,
  '0120_answer_provenance': answerProvenance,
  '0130_event_outbox': eventOutbox,
};

export function migrationsFor(dialect: SqlDialectName): Record<string, Migration> {
  return Object.fromEntries(
    Object.entries(ordered).map(([name, migration]) => [
      name,
      { up: (db: Kysely<unknown>) => migration.up(db, dialect) },
    ]),
  );
}
