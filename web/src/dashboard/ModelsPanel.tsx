import { useState } from 'react';
import { getJson } from '../lib/api.ts';
import { lineageHref } from '../lineage/route.ts';
import { field, listOf, num, text } from './fields.ts';
import { formatTime, Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

/** MLflow REST shapes (mlflow/protos/model_registry.proto, service.proto). */
interface KeyValue {
  key: string;
  value: string;
}

interface Version {
  version: string;
  createdAt: number | undefined;
  runId: string | undefined;
  source: string | undefined;
  status: string | undefined;
  aliases: string[];
  tags: KeyValue[];
  metrics: Map<string, number>;
  params: KeyValue[];
}

interface RegisteredModel {
  name: string;
  aliases: Map<string, string>;
  versions: Version[];
}

const MLFLOW = '/api/2.0/mlflow';
/** Run params and tags that say where a version came from. */
/** Metrics where lower is better; every other metric is highlighted at its maximum. */
const LOWER_IS_BETTER = /loss|error|hallucination|perplexity|latency|cost|down|toxicity/i;
const LINEAGE_KEY = /parent|base|dataset|data_|source|adapter|lora|trigger|feedback|commit|mlflow\.parentRunId/i;

function keyValues(value: unknown): KeyValue[] {
  return listOf(value ?? []).map((item) => ({ key: text(item, 'key') ?? '', value: text(item, 'value') ?? '' }));
}

async function loadModels(signal: AbortSignal): Promise<RegisteredModel[]> {
  const registered = await getJson<unknown>(`${MLFLOW}/registered-models/search?max_results=50`, signal);
  return Promise.all(
    listOf(registered, 'registered_models').map(async (model) => {
      const name = text(model, 'name') ?? '?';
      const aliases = new Map(
        listOf(field(model, 'aliases') ?? []).map((alias) => [
          text(alias, 'alias') ?? '',
          text(alias, 'version') ?? '',
        ]),
      );
      const filter = encodeURIComponent(`name='${name.replaceAll("'", "\\'")}'`);
      const found = await getJson<unknown>(`${MLFLOW}/model-versions/search?filter=${filter}&max_results=20`, signal);
      const versions = await Promise.all(
        listOf(found, 'model_versions').map(async (raw): Promise<Version> => {
          const version = text(raw, 'version') ?? '?';
          const runId = text(raw, 'runId');
          let metrics = new Map<string, number>();
          let params: KeyValue[] = [];
          if (runId) {
            const run = await getJson<unknown>(`${MLFLOW}/runs/get?run_id=${encodeURIComponent(runId)}`, signal).catch(
              () => undefined,
            );
            const data = field(field(run, 'run'), 'data');
            metrics = new Map(
              listOf(field(data, 'metrics') ?? []).map((metric) => [
                text(metric, 'key') ?? '',
                num(metric, 'value') ?? Number.NaN,
              ]),
            );
            params = [...keyValues(field(data, 'params')), ...keyValues(field(data, 'tags'))];
          }
          return {
            version,
            createdAt: num(raw, 'creationTimestamp'),
            runId,
            source: text(raw, 'source'),
            status: text(raw, 'status'),
            aliases: [...aliases].filter(([, target]) => target === version).map(([alias]) => alias),
            tags: keyValues(field(raw, 'tags')),
            metrics,
            params,
          };
        }),
      );
      versions.sort((a, b) => Number(b.version) - Number(a.version));
      return { name, aliases, versions };
    }),
  );
}

function MetricsTable({ versions }: { versions: Version[] }) {
  const keys = [...new Set(versions.flatMap((version) => [...version.metrics.keys()]))].sort();
  if (keys.length === 0) return <p className="muted small">No metrics logged.</p>;
  return (
    <div className="table-scroll">
      <table className="metrics">
        <thead>
          <tr>
            <th scope="col">metric</th>
            {versions.map((version) => (
              <th scope="col" key={version.version}>
                v{version.version}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {keys.map((key) => {
            const values = versions.map((version) => version.metrics.get(key));
            const known = values.filter((value): value is number => value !== undefined);
            const best = LOWER_IS_BETTER.test(key) ? Math.min(...known) : Math.max(...known);
            return (
              <tr key={key}>
                <th scope="row">{key}</th>
                {values.map((value, index) => (
                  <td key={versions[index]?.version} className={value === best && values.length > 1 ? 'best' : ''}>
                    {value === undefined ? '—' : Number.isInteger(value) ? value : value.toFixed(4)}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function ModelsPanel({ refreshKey }: { refreshKey: number }) {
  const { data, error, loading } = usePanelData(loadModels, refreshKey);
  const [open, setOpen] = useState<string | undefined>();
  return (
    <Panel id="models" title="Model registry" error={error} loading={loading} wide>
      {(data ?? []).length === 0 && <p className="muted">No registered models yet.</p>}
      {(data ?? []).map((model) => (
        <div key={model.name} className="model" data-model={model.name}>
          <h3>
            {model.name}{' '}
            {[...model.aliases].map(([alias, version]) => (
              <span key={alias} className={`badge alias alias-${alias}`}>
                @{alias} → v{version}
              </span>
            ))}
          </h3>
          <div className="table-scroll">
            <table className="versions">
              <thead>
                <tr>
                  <th scope="col">version</th>
                  <th scope="col">aliases</th>
                  <th scope="col">created</th>
                  <th scope="col">status</th>
                  <th scope="col">lineage</th>
                </tr>
              </thead>
              <tbody>
                {model.versions.map((version) => {
                  const lineage = [...version.tags, ...version.params].filter((item) => LINEAGE_KEY.test(item.key));
                  const id = `${model.name}/${version.version}`;
                  return (
                    <tr key={version.version} data-version={version.version}>
                      <td>v{version.version}</td>
                      <td>
                        {version.aliases.map((alias) => (
                          <span key={alias} className={`badge alias alias-${alias}`}>
                            @{alias}
                          </span>
                        ))}
                      </td>
                      <td>{formatTime(version.createdAt)}</td>
                      <td>{version.status ?? '—'}</td>
                      <td>
                        <a href={lineageHref('model-version', id)} className="lineage-link">
                          lineage
                        </a>{' '}
                        {lineage.length === 0 ? (
                          <span className="muted">run {version.runId ?? '—'}</span>
                        ) : (
                          <details open={open === id} onToggle={(event) => event.currentTarget.open && setOpen(id)}>
                            <summary>{lineage.length === 1 ? '1 link' : `${lineage.length} links`}</summary>
                            <ul className="lineage">
                              <li>
                                run <code>{version.runId}</code>
                              </li>
                              {lineage.map((item) => (
                                <li key={item.key}>
                                  {item.key}: <code>{item.value}</code>
                                </li>
                              ))}
                            </ul>
                          </details>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <MetricsTable versions={model.versions} />
        </div>
      ))}
    </Panel>
  );
}
