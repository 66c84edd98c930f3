import { useEffect, useRef, useState } from 'react';
import { authHeaders, describeFailure, errorFrom, getJson } from '../lib/api.ts';
import { readSse } from '../lib/sse.ts';
import { type DagStep, DagView } from './DagView.tsx';
import { field, listOf, text } from './fields.ts';
import { formatDuration, formatTime, Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

interface Run {
  id: string;
  pipeline: string;
  status: string;
  createdAt: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  steps: DagStep[];
}

function durationBetween(start: string | undefined, end: string | undefined): number | undefined {
  if (!start) return undefined;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : Date.now();
  return Number.isNaN(from) || Number.isNaN(to) ? undefined : to - from;
}

function toStep(raw: unknown): DagStep {
  const dependsOn = field(raw, 'dependsOn', 'dependencies', 'needs');
  const started = text(raw, 'startedAt');
  const finished = text(raw, 'finishedAt', 'endedAt');
  const explicit = field(raw, 'durationMs');
  return {
    name: text(raw, 'name', 'step') ?? '?',
    status: text(raw, 'status', 'state') ?? 'pending',
    dependsOn: Array.isArray(dependsOn) ? dependsOn.map(String) : [],
    durationMs: typeof explicit === 'number' ? explicit : durationBetween(started, finished),
  };
}

function toRun(raw: unknown): Run {
  return {
    id: text(raw, 'id', 'runId') ?? '?',
    pipeline: text(raw, 'pipeline', 'pipelineName', 'name') ?? '?',
    status: text(raw, 'status', 'state') ?? 'unknown',
    createdAt: text(raw, 'createdAt'),
    startedAt: text(raw, 'startedAt'),
    finishedAt: text(raw, 'finishedAt', 'endedAt'),
    steps: listOf(field(raw, 'steps') ?? []).map(toStep),
  };
}

/** A step's log, followed live while the step runs (text or SSE, whichever the server streams). */
function StepLog({ runId, step, status }: { runId: string; step: string; status: string }) {
  const [log, setLog] = useState('');
  const [error, setError] = useState<string | null>(null);
  const pre = useRef<HTMLPreElement>(null);

  // biome-ignore lint/correctness/useExhaustiveDependencies: a step that changes state is re-read to its end.
  useEffect(() => {
    const controller = new AbortController();
    setLog('');
    setError(null);
    (async () => {
      const path = `/v1/pipelines/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step)}/logs?follow=true`;
      const response = await fetch(path, { signal: controller.signal, headers: authHeaders() });
      if (!response.ok) throw await errorFrom(response);
      if (!response.body) return;
      if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
        for await (const message of readSse(response.body)) setLog((current) => `${current}${message.data}\n`);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        setLog((current) => current + decoder.decode(value, { stream: true }));
      }
    })().catch((failure: unknown) => {
      if (!controller.signal.aborted) setError(describeFailure(failure));
    });
    return () => controller.abort();
  }, [runId, step, status]);

  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  });

  return (
    <div className="step-log">
      <h3>
        Log of <code>{step}</code>
      </h3>
      {error ? (
        <p className="muted">{error}</p>
      ) : (
        <pre ref={pre} aria-live="polite" data-step-log={step}>
          {log || '(no output yet)'}
        </pre>
      )}
    </div>
  );
}

export function PipelinesPanel({ refreshKey }: { refreshKey: number }) {
  const { data, error, loading } = usePanelData(async (signal) => {
    const [runs, pipelines] = await Promise.all([
      getJson<unknown>('/v1/pipelines/runs?limit=20', signal),
      getJson<unknown>('/v1/pipelines', signal).catch(() => undefined),
    ]);
    const definitions = new Map(
      listOf(pipelines).map((pipeline) => [
        text(pipeline, 'name') ?? '',
        listOf(field(pipeline, 'steps') ?? []).map(toStep),
      ]),
    );
    return listOf(runs).map((raw) => {
      const run = toRun(raw);
      // A run lists its steps' states; the pipeline definition knows their dependencies.
      const defined = definitions.get(run.pipeline) ?? [];
      const steps =
        defined.length === 0
          ? run.steps
          : defined.map((step) => {
              const state = run.steps.find((candidate) => candidate.name === step.name);
              return { ...step, ...state, dependsOn: state?.dependsOn.length ? state.dependsOn : step.dependsOn };
            });
      return { ...run, steps };
    });
  }, refreshKey);
  const [selectedRun, setSelectedRun] = useState<string | undefined>();
  const [selectedStep, setSelectedStep] = useState<string | undefined>();
  const runs = data ?? [];
  const run = runs.find((candidate) => candidate.id === selectedRun) ?? runs[0];
  const step = run?.steps.find((candidate) => candidate.name === selectedStep);

  return (
    <Panel id="pipelines" title="Pipeline runs" error={error} loading={loading} wide>
      {runs.length === 0 ? (
        <p className="muted">No runs yet.</p>
      ) : (
        <div className="runs">
          <ul className="run-list">
            {runs.map((candidate) => (
              <li key={candidate.id}>
                <button
                  type="button"
                  className={`run-item${candidate.id === run?.id ? ' selected' : ''}`}
                  aria-pressed={candidate.id === run?.id}
                  onClick={() => {
                    setSelectedRun(candidate.id);
                    setSelectedStep(undefined);
                  }}
                >
                  <span className={`badge state-${candidate.status}`}>{candidate.status}</span> {candidate.pipeline}
                  <span className="muted small"> {formatTime(candidate.createdAt ?? candidate.startedAt)}</span>
                </button>
              </li>
            ))}
          </ul>
          {run && (
            <div className="run-detail" data-run-id={run.id}>
              <p>
                <strong>{run.pipeline}</strong> <code>{run.id}</code> · {run.status} · took{' '}
                {formatDuration(durationBetween(run.startedAt ?? run.createdAt, run.finishedAt))}
              </p>
              <DagView steps={run.steps} selected={step?.name} onSelect={setSelectedStep} />
              {step ? (
                <StepLog runId={run.id} step={step.name} status={step.status} />
              ) : (
                <p className="muted small">Select a step to follow its log.</p>
              )}
            </div>
          )}
        </div>
      )}
    </Panel>
  );
}
