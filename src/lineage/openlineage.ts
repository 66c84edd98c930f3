import { hostname } from 'node:os';
import path from 'node:path';
import { BERTHA_VERSION } from '../core/version.ts';
import type { StepRunEvent } from './run-events.ts';

/** The run event schema the export conforms to (https://openlineage.io/spec/2-0-2/OpenLineage.json). */
export const OPENLINEAGE_SCHEMA_URL = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';
const PARENT_FACET_SCHEMA_URL = 'https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet';
const ERROR_FACET_SCHEMA_URL =
  'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet';

/** OpenLineage's `producer`: a URI naming the software and version that wrote the event. */
export const OPENLINEAGE_PRODUCER = `bertha://producer/${BERTHA_VERSION}`;

/**
 * The namespace of Bertha's jobs and datasets: one installation is one data dir on one host.
 * Computed when the events are exported, so every event of one export shares it.
 */
export function openLineageNamespace(dataDir: string): string {
  return `bertha://${hostname()}${path.resolve(dataDir)}`;
}

/** Dataset names steps report (the namespace is added on export). */
export const lineageDatasets = {
  feedback: 'feedback',
  dataset: (version: string) => `dataset/${version}`,
  /** `model/<model>/<n>` for a registry version; `model/starter`, `model/local` otherwise. */
  model: (version: string) => `model/${version}`,
  /** An object as uploaded, before it is loaded. */
  object: (key: string) => `objects/${key}`,
  document: (key: string, version: string) => `documents/${key}@${version}`,
  rollout: (id: string) => `rollout/${id}`,
};

interface Dataset {
  namespace: string;
  name: string;
}

/** The JSON an OpenLineage consumer (Marquez, the OpenLineage proxy) accepts, one per line. */
export interface OpenLineageRunEvent {
  eventType: StepRunEvent['eventType'];
  eventTime: string;
  run: { runId: string; facets: Record<string, Record<string, unknown>> };
  job: { namespace: string; name: string };
  inputs: Dataset[];
  outputs: Dataset[];
  producer: string;
  schemaURL: string;
}

export function toOpenLineage(event: StepRunEvent, namespace: string): OpenLineageRunEvent {
  const facet = (schemaURL: string) => ({ _producer: OPENLINEAGE_PRODUCER, _schemaURL: schemaURL });
  const facets: Record<string, Record<string, unknown>> = {
    parent: {
      ...facet(PARENT_FACET_SCHEMA_URL),
      run: { runId: event.parent.runUuid },
      job: { namespace, name: event.parent.job },
    },
  };
  if (event.error !== null) {
    facets.errorMessage = { ...facet(ERROR_FACET_SCHEMA_URL), message: event.error, programmingLanguage: 'TypeScript' };
  }
  const datasets = (names: string[]) => names.map((name) => ({ namespace, name }));
  return {
    eventType: event.eventType,
    eventTime: event.eventTime,
    run: { runId: event.runUuid, facets },
    job: { namespace, name: event.job },
    inputs: datasets(event.inputs),
    outputs: datasets(event.outputs),
    producer: OPENLINEAGE_PRODUCER,
    schemaURL: OPENLINEAGE_SCHEMA_URL,
  };
}
