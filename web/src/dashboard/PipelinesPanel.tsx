import { useEffect, useRef, useState } from 'react';
import { authHeaders, describeFailure, errorFrom, getJson } from '../lib/api.ts';
import { readSse } from '../lib/sse.ts';
import { lineageHref } from '../lineage/route.ts';
import { type DagStep, DagView } from './DagView.tsx';
import { field, listOf, num, text } from './fields.ts';
import { formatDuration, formatTime, Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

/** Shapes of src/pipelines (RunRecord, StepState, LogRecord) as the pipelines API returns them. */
interface Run {
  id: string;
  pipeline: string;
  status: string;
  source: string | undefined;
  error: string | undefined;
  createdAt: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
}

interface StepView extends DagStep {
  attempts: number | undefined;
  progressMessage: string | undefined;
  error: string | undefined;
}

interface LogLine {
  id: string;
  step: string;
  level: string;
  message: string;
  createdAt: string;
}

const ACTIVE = new Set(['queued', 'running']);
const SHOWN_LOG_LINES = 500;

function durationBetween(start: string | undefined, end: string | undefined): number | undefined {
  if (!start) return undefined;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : Date.now();
  return Number.isNaN(from) || Number.isNaN(to) ? undefined : to - from;
}

function toRun(raw: unknown): Run {
  return {
    id: text(raw, 'id') ?? '?',
    pipeline: text(raw, 'pipeline') ?? '?',
    status: text(raw, 'status') ?? 'unknown',
    source: text(raw, 'source'),
    error: text(raw, 'error'),
    createdAt: text(raw, 'createdAt'),
    startedAt: text(raw, 'startedAt'),
    finishedAt: text(raw, 'finishedAt'),
  };
}

function toStep(raw: unknown, dependsOn?: string[]): StepView {
  const declared = field(raw, 'dependsOn');
  const progress = num(raw, 'progress');
  const status = text(raw, 'status') ?? 'pending';
  return {
    name: text(raw, 'name') ?? '?',
    status,
    dependsOn: Array.isArray(declared) ? declared.map(String) : (dependsOn ?? []),
    durationMs: durationBetween(text(raw, 'startedAt'), text(raw, 'finishedAt')),
    attempts: num(raw, 'attempts'),
    progressMessage:
      text(raw, 'progressMessage') ??
      (status === 'running' && progress !== undefined ? `${Math.round(progress * 100)}%` : undefined),
    error: text(raw, 'error'),
  };
}

function toLogLine(raw: unknown): LogLine {
  return {
    id: text(raw, 'id') ?? '',
    step: text(raw, 'step') ?? '',
    level: text(raw, 'level') ?? 'info',
    message: text(raw, 'message') ?? '',
    createdAt: text(raw, 'createdAt') ?? '',
  };
}

/**
 * Follows one run: its step states and log lines arrive on the run's log stream
 * (`GET /v1/pipeline-runs/:id/logs?follow=true`, server-sent events `step`, `log`, `end`).
 */
function useRunStream(runId: string | undefined, onEnd: () => void) {
  const [steps, setSteps] = useState<StepView[]>([]);
  const [logs, setLogs] = useState<LogLine[]>([]);
  const [error, setError] = useState<string | null>(null);
  const ended = useRef(onEnd);
  ended.current = onEnd;

  useEffect(() => {
    if (!runId) return;
    const controller = new AbortController();
    setSteps([]);
    setLogs([]);
    setError(null);
    (async () => {
      const detail = await getJson<unknown>(`/v1/pipeline-runs/${encodeURIComponent(runId)}`, controller.signal);
      const initial = listOf(field(detail, 'steps') ?? []).map((raw) => toStep(raw));
      const dependencies = new Map(initial.map((step) => [step.name, step.dependsOn]));
      setSteps(initial);
      const response = await fetch(`/v1/pipeline-runs/${encodeURIComponent(runId)}/logs?follow=true`, {
        signal: controller.signal,
        headers: { accept: 'text/event-stream', ...authHeaders() },
      });
      if (!response.ok) throw await errorFrom(response);
      if (!response.body) return;
      for await (const message of readSse(response.body)) {
        const data = JSON.parse(message.data) as unknown;
        if (message.event === 'step') {
          const step = toStep(data, dependencies.get(text(data, 'name') ?? ''));
          setSteps((current) =>
            current.some((item) => item.name === step.name)
              ? current.map((item) => (item.name === step.name ? step : item))
              : [...current, step],
          );
        } else if (message.event === 'log') {
          setLogs((current) => [...current.slice(-SHOWN_LOG_LINES), toLogLine(data)]);
        } else if (message.event === 'end') {
          ended.current();
        }
      }
    })().catch((failure: unknown) => {
      if (!controller.signal.aborted) setError(describeFailure(failure));
    });
    return () => controller.abort();
  }, [runId]);

  return { steps, logs, error };
}

function StepLog({ step, lines }: { step: StepView; lines: LogLine[] }) {
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  });
  return (
    <div className="step-log">
      <h3>
        <code>{step.name}</code> · {step.status}
        {step.attempts !== undefined && step.attempts > 1 ? ` · attempt ${step.attempts}` : ''} · took{' '}
        {formatDuration(step.durationMs)}
        {step.progressMessage ? ` · ${step.progressMessage}` : ''}
      </h3>
      {step.error && <p className="error">{step.error}</p>}
      <pre ref={pre} aria-live="polite" data-step-log={step.name}>
        {lines.length === 0
          ? '(no output yet)'
          : lines.map((line) => `${line.createdAt.slice(11, 19)} ${line.level.padEnd(5)} ${line.message}`).join('\n')}
      </pre>
    </div>
  );
}

export function PipelinesPanel({ refreshKey }: { refreshKey: number }) {
  const { data, error, loading, reload } = usePanelData(
    async (signal) => listOf(await getJson<unknown>('/v1/pipeline-runs?limit=20', signal)).map(toRun),
    refreshKey,
    // Runs publish no bus events: new runs are found by polling; a selected run streams live.
    3_000,
  );
  const [selectedRun, setSelectedRun] = useState<string | undefined>();
  const [selectedStep, setSelectedStep] = useState<string | undefined>();
  const runs = data ?? [];
  const run = runs.find((candidate) => candidate.id === selectedRun) ?? runs[0];
  const live = useRunStream(run?.id, reload);
  const step =
    live.steps.find((candidate) => candidate.name === selectedStep) ??
    live.steps.find((candidate) => candidate.status === 'running') ??
    live.steps.find((candidate) => candidate.status === 'failed');

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
                  data-run-id={candidate.id}
                  onClick={() => {
                    setSelectedRun(candidate.id);
                    setSelectedStep(undefined);
                  }}
                >
                  <span className={`badge state-${candidate.status}`}>{candidate.status}</span> {candidate.pipeline}
                  <span className="muted small"> {formatTime(candidate.createdAt)}</span>
                </button>
              </li>
            ))}
          </ul>
          {run && (
            <div className="run-detail" data-run-id={run.id} data-status={run.status}>
              <p>
                <strong>{run.pipeline}</strong> <code>{run.id}</code> · {run.status}
                {run.source ? ` · started by ${run.source}` : ''} · took{' '}
                {formatDuration(durationBetween(run.startedAt ?? run.createdAt, run.finishedAt))}
                {ACTIVE.has(run.status) && <span className="muted"> (live)</span>} ·{' '}
                <a href={lineageHref('run', run.id)} className="lineage-link">
                  lineage
                </a>
              </p>
              {run.error && <p className="error">{run.error}</p>}
              {live.error && <p className="error">{live.error}</p>}
              <DagView steps={live.steps} selected={step?.name} onSelect={setSelectedStep} />
              {step ? (
                <StepLog step={step} lines={live.logs.filter((line) => line.step === step.name)} />
              ) : (
                <p className="muted small">Select a step to see its log.</p>
              )}
            </div>
          )}
        </div>
      )}
    </Panel>
  );
}
