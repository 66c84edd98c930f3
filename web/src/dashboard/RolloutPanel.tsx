import { getJson } from '../lib/api.ts';
import { lineageHref } from '../lineage/route.ts';
import { field, listOf, num, text } from './fields.ts';
import { formatTime, Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

/** Shapes of `GET /v1/rollouts/:id` (src/rollout/routes.ts). */
interface Arm {
  version: string;
  answers: number;
  failed: number;
  up: number;
  down: number;
}

interface Decision {
  id: string;
  kind: string;
  shareBefore: number;
  shareAfter: number;
  reason: string;
  createdAt: string;
  arms: { champion: Arm; challenger: Arm } | undefined;
  probabilities: { downWorse: number; errorWorse: number } | undefined;
  manual: boolean;
  /** For a rolled-back promotion: where the champion alias went. */
  aliasMove: { from: string; to: string } | undefined;
}

interface Rollout {
  id: string;
  model: string;
  status: string;
  share: number;
  championVersion: string;
  challengerVersion: string;
  createdAt: string;
  finishedAt: string | undefined;
  arms: { live: boolean; since: string | undefined; champion: Arm; challenger: Arm } | undefined;
  decisions: Decision[];
}

/** Rollouts shown: the running one (if any) and the latest finished ones. */
const SHOWN = 3;
/** Votes and waits publish no event: the panel reloads this often for a running canary's arms. */
const LIVE_POLL_MS = 5_000;

function toArm(raw: unknown): Arm | undefined {
  const version = text(raw, 'version');
  if (!version) return undefined;
  return {
    version,
    answers: num(raw, 'answers') ?? 0,
    failed: num(raw, 'failed') ?? 0,
    up: num(raw, 'up') ?? 0,
    down: num(raw, 'down') ?? 0,
  };
}

function toDecision(raw: unknown): Decision {
  const evidence = field(raw, 'evidence');
  const champion = toArm(field(evidence, 'champion'));
  const challenger = toArm(field(evidence, 'challenger'));
  const probabilities = field(evidence, 'probabilities');
  const downWorse = num(probabilities, 'downWorse');
  const errorWorse = num(probabilities, 'errorWorse');
  const from = text(evidence, 'from');
  const to = text(evidence, 'to');
  return {
    id: text(raw, 'id') ?? '',
    kind: text(raw, 'kind') ?? '?',
    shareBefore: num(raw, 'shareBefore') ?? 0,
    shareAfter: num(raw, 'shareAfter') ?? 0,
    reason: text(raw, 'reason') ?? '',
    createdAt: text(raw, 'createdAt') ?? '',
    arms: champion && challenger ? { champion, challenger } : undefined,
    probabilities: downWorse !== undefined && errorWorse !== undefined ? { downWorse, errorWorse } : undefined,
    manual: field(evidence, 'manual') === true,
    aliasMove: field(evidence, 'revertedPromotion') === true && from && to ? { from, to } : undefined,
  };
}

function toRollout(raw: unknown): Rollout {
  const arms = field(raw, 'arms');
  const champion = toArm(field(arms, 'champion'));
  const challenger = toArm(field(arms, 'challenger'));
  return {
    id: text(raw, 'id') ?? '?',
    model: text(raw, 'model') ?? '',
    status: text(raw, 'status') ?? 'unknown',
    share: num(raw, 'share') ?? 0,
    championVersion: text(raw, 'championVersion') ?? '?',
    challengerVersion: text(raw, 'challengerVersion') ?? '?',
    createdAt: text(raw, 'createdAt') ?? '',
    finishedAt: text(raw, 'finishedAt'),
    arms:
      champion && challenger
        ? { live: field(arms, 'live') === true, since: text(arms, 'since'), champion, challenger }
        : undefined,
    decisions: listOf(field(raw, 'decisions') ?? []).map(toDecision),
  };
}

async function loadRollouts(signal: AbortSignal): Promise<Rollout[]> {
  const listed = listOf(await getJson<unknown>(`/v1/rollouts?limit=${SHOWN}`, signal));
  return Promise.all(
    listed.map(async (item) =>
      toRollout(await getJson<unknown>(`/v1/rollouts/${encodeURIComponent(text(item, 'id') ?? '')}`, signal)),
    ),
  );
}

function percent(value: number): string {
  return `${Math.round(value * 1000) / 10}%`;
}

function rate(events: number, total: number): string {
  return total > 0 ? percent(events / total) : '—';
}

const STATUS_LABEL: Record<string, string> = { running: 'running', promoted: 'promoted', rolled_back: 'rolled back' };

function ArmsTable({ arms }: { arms: NonNullable<Rollout['arms']> }) {
  return (
    <div className="table-scroll">
      <table className="rollout-arms">
        <thead>
          <tr>
            <th scope="col">arm</th>
            <th scope="col">version</th>
            <th scope="col">answers</th>
            <th scope="col">errors</th>
            <th scope="col">error rate</th>
            <th scope="col">up</th>
            <th scope="col">down</th>
            <th scope="col">thumbs-down rate</th>
          </tr>
        </thead>
        <tbody>
          {(['champion', 'challenger'] as const).map((name) => {
            const arm = arms[name];
            return (
              <tr key={name} data-arm={name}>
                <th scope="row">{name}</th>
                <td>{arm.version}</td>
                <td>{arm.answers}</td>
                <td>{arm.failed}</td>
                <td>{rate(arm.failed, arm.answers)}</td>
                <td className="good">{arm.up}</td>
                <td className="bad">{arm.down}</td>
                <td>{rate(arm.down, arm.up + arm.down)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Evidence({ decision }: { decision: Decision }) {
  const lines: string[] = [];
  if (decision.arms) {
    for (const name of ['champion', 'challenger'] as const) {
      const arm = decision.arms[name];
      lines.push(
        `${name} ${arm.version}: ${arm.answers} answers, ${arm.failed} failed, ${arm.up} up, ${arm.down} down`,
      );
    }
  }
  if (decision.probabilities) {
    lines.push(
      `P(thumbs-down worse) ${percent(decision.probabilities.downWorse)}, P(errors worse) ${percent(decision.probabilities.errorWorse)}`,
    );
  }
  if (decision.aliasMove) lines.push(`champion alias ${decision.aliasMove.from} → ${decision.aliasMove.to}`);
  if (decision.manual) lines.push('by hand');
  if (lines.length === 0) return null;
  return (
    <ul className="decision-evidence muted small">
      {lines.map((line) => (
        <li key={line}>{line}</li>
      ))}
    </ul>
  );
}

function RolloutView({ rollout }: { rollout: Rollout }) {
  const challengerShare = Math.max(0, Math.min(1, rollout.share));
  return (
    <article className="rollout" data-rollout={rollout.id} data-status={rollout.status}>
      <h3>
        <span className="rollout-versions">
          {rollout.challengerVersion} <span className="muted">vs</span> {rollout.championVersion}
        </span>{' '}
        <span className={`badge state-${rollout.status}`}>{STATUS_LABEL[rollout.status] ?? rollout.status}</span>{' '}
        <span className="rollout-share">challenger share {percent(rollout.share)}</span>
      </h3>
      <div
        className="share-bar"
        role="img"
        aria-label={`${rollout.challengerVersion} serves ${percent(challengerShare)} of conversations, ${rollout.championVersion} the rest`}
      >
        <span className="share-challenger" style={{ width: `${challengerShare * 100}%` }} />
        <span className="share-champion" style={{ width: `${(1 - challengerShare) * 100}%` }} />
      </div>
      <p className="muted small">
        {rollout.model} · started {formatTime(rollout.createdAt)}
        {rollout.finishedAt ? ` · finished ${formatTime(rollout.finishedAt)}` : ''} · <code>{rollout.id}</code> ·{' '}
        <a href={lineageHref('rollout', rollout.id)}>lineage</a>
      </p>
      {rollout.arms ? (
        <>
          <p className="small">
            {rollout.arms.live
              ? `Arms since the current step began (${formatTime(rollout.arms.since)})`
              : 'Arms at the last decision that compared them'}
          </p>
          <ArmsTable arms={rollout.arms} />
        </>
      ) : (
        <p className="muted small">No answers compared yet.</p>
      )}
      <ol className="rollout-decisions" aria-label={`Decisions of ${rollout.id}`}>
        {rollout.decisions.map((decision) => (
          <li key={decision.id} className="decision" data-kind={decision.kind}>
            <span className="muted small">{formatTime(decision.createdAt)}</span>{' '}
            <span className={`badge decision-${decision.kind}`}>{decision.kind}</span>{' '}
            <span className="decision-share">
              {decision.shareBefore === decision.shareAfter
                ? percent(decision.shareAfter)
                : `${percent(decision.shareBefore)} → ${percent(decision.shareAfter)}`}
            </span>{' '}
            <span className="decision-reason">{decision.reason}</span>
            <Evidence decision={decision} />
          </li>
        ))}
      </ol>
    </article>
  );
}

/** Canary rollouts, live: both arms, the challenger's share, and every decision with its evidence. */
export function RolloutPanel({ refreshKey }: { refreshKey: number }) {
  const { data, error, loading } = usePanelData(loadRollouts, refreshKey, LIVE_POLL_MS);
  const rollouts = data ?? [];
  return (
    <Panel id="rollouts" title="Canary rollouts" error={error} loading={loading} wide>
      {rollouts.length === 0 && !loading && <p className="muted">No rollouts yet.</p>}
      {rollouts.map((rollout) => (
        <RolloutView key={rollout.id} rollout={rollout} />
      ))}
    </Panel>
  );
}
