import type { Command } from 'commander';
import type { Config } from '../../config/index.ts';
import { BerthaError } from '../../core/errors.ts';
import type { ArmEvidence, DecisionJson, RolloutDetailJson, RolloutJson } from '../../rollout/index.ts';
import { CHAMPION } from '../../tracking/index.ts';
import { configFrom } from '../options.ts';
import { API_KEY_ENV, openServerFetch } from '../server-fetch.ts';
import { table } from '../table.ts';

/** Bertha's own HTTP API as the CLI reaches it: the running server, else an in-process one. */
export interface BerthaApi {
  /** One call; an answer that is not 2xx throws a BerthaError with the server's code and message. */
  request<T>(method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<T>;
  /** Where the calls go, for messages. */
  target: string;
  close(): Promise<void>;
}

async function errorOf(status: number, text: string): Promise<BerthaError> {
  let code = `http_${status}`;
  let message = text || `HTTP ${status}`;
  try {
    // Bertha's `{error: {code, message}}` and MLflow's `{error_code, message}`.
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string };
      error_code?: string;
      message?: string;
    };
    code = body.error?.code ?? body.error_code ?? code;
    message = body.error?.message ?? body.message ?? message;
  } catch {
    // Not JSON: the text is the message.
  }
  if (status === 401) message += ` (set ${API_KEY_ENV} to a key with the needed role: bertha auth create-key)`;
  return new BerthaError(code, message, status);
}

/**
 * The running Bertha (`server.host`/`server.port`) when it answers, so its controller and chat
 * see the change at once; with none up, an in-process Bertha that serves no chat answers the
 * same API over `inject`, on the same database.
 */
export async function openBerthaApi(config: Config): Promise<BerthaApi> {
  const server = await openServerFetch(config);
  return {
    async request<T>(method: 'GET' | 'POST', path: string, body?: Record<string, unknown>) {
      const response = await server.fetch(`${server.base}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (!response.ok) throw await errorOf(response.status, text);
      return JSON.parse(text) as T;
    },
    target: server.target,
    close: () => server.close(),
  };
}

async function withApi<T>(command: Command, work: (api: BerthaApi, config: Config) => Promise<T>): Promise<T> {
  const { config } = configFrom(command);
  const api = await openBerthaApi(config);
  try {
    return await work(api, config);
  } finally {
    await api.close();
  }
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toISOString().slice(0, 19).replace('T', ' ') : '-';
}

function rate(events: number, total: number): string {
  return total > 0 ? percent(events / total) : '-';
}

function armLine(arm: ArmEvidence): string {
  return `${arm.version}: ${arm.answers} answers, ${arm.failed} failed, ${arm.up} up, ${arm.down} down`;
}

/** A decision's evidence in a line or two: the arms it compared and the probabilities it used. */
function evidenceLines(decision: DecisionJson): string[] {
  const { evidence } = decision;
  const lines: string[] = [];
  const arm = (value: unknown) => (typeof value === 'object' && value !== null ? (value as ArmEvidence) : undefined);
  const champion = arm(evidence.champion);
  const challenger = arm(evidence.challenger);
  if (champion?.version !== undefined && challenger?.version !== undefined) {
    lines.push(`champion ${armLine(champion)}`, `challenger ${armLine(challenger)}`);
  }
  const since = arm(evidence.sincePromotion);
  if (since?.version !== undefined) {
    lines.push(`champion alias ${String(evidence.from)} -> ${String(evidence.to)}; since promotion ${armLine(since)}`);
  }
  const probabilities = evidence.probabilities as Record<string, number> | undefined;
  if (probabilities && typeof probabilities.downWorse === 'number' && typeof probabilities.errorWorse === 'number') {
    lines.push(
      `P(thumbs-down worse) ${percent(probabilities.downWorse)}, P(errors worse) ${percent(probabilities.errorWorse)}`,
    );
  }
  if (evidence.manual === true) lines.push('by hand');
  return lines;
}

/** The human view of one rollout: versions, share, both arms, every decision with its evidence. */
function formatRollout(rollout: RolloutDetailJson): string {
  const out: string[] = [];
  const serving =
    rollout.status === 'running'
      ? `running at step ${rollout.step + 1}: the challenger serves ${percent(rollout.share)} of conversations`
      : rollout.status === 'promoted'
        ? `promoted ${when(rollout.finished_at)}: the challenger is champion`
        : `rolled back ${when(rollout.finished_at)}: the champion serves every conversation`;
  out.push(
    `Rollout     ${rollout.id} (${rollout.model})`,
    `State       ${serving}`,
    `Share       ${percent(rollout.share)}`,
    `Champion    ${rollout.champion_version}`,
    `Challenger  ${rollout.challenger_version}`,
    `Started     ${when(rollout.created_at)}`,
    '',
  );
  if (rollout.arms) {
    const rows = [['ARM', 'VERSION', 'ANSWERS', 'ERRORS', 'ERROR RATE', 'UP', 'DOWN', 'DOWN RATE']];
    for (const [name, arm] of [
      ['champion', rollout.arms.champion],
      ['challenger', rollout.arms.challenger],
    ] as const) {
      rows.push([
        name,
        arm.version,
        String(arm.answers),
        String(arm.failed),
        rate(arm.failed, arm.answers),
        String(arm.up),
        String(arm.down),
        rate(arm.down, arm.up + arm.down),
      ]);
    }
    out.push(
      rollout.arms.live
        ? `Arms since the current step began (${when(rollout.arms.since)}):`
        : 'Arms at the last decision that compared them:',
      table(rows),
      '',
    );
  }
  out.push('Decisions:');
  const rows = [['TIME', 'KIND', 'SHARE', 'REASON']];
  for (const decision of rollout.decisions) {
    const share =
      decision.share_before === decision.share_after
        ? percent(decision.share_after)
        : `${percent(decision.share_before)} -> ${percent(decision.share_after)}`;
    rows.push([when(decision.created_at), decision.kind, share, decision.reason]);
  }
  const [header, ...lines] = table(rows).split('\n');
  out.push(header ?? '');
  // Each decision's evidence under its line, indented to the KIND column.
  const indent = ' '.repeat((header ?? '').indexOf('KIND'));
  rollout.decisions.forEach((decision, index) => {
    out.push(lines[index] ?? '');
    for (const line of evidenceLines(decision)) out.push(`${indent}${line}`);
  });
  return `${out.join('\n')}\n`;
}

/** A version as rollouts name it: `3` becomes `<model>/3`. */
function qualifiedVersion(model: string, version: string): string {
  return version.includes('/') ? version : `${model}/${version}`;
}

async function listRollouts(api: BerthaApi, limit = 20): Promise<RolloutJson[]> {
  return (await api.request<{ data: RolloutJson[] }>('GET', `/v1/rollouts?limit=${limit}`)).data;
}

/**
 * Rolls back what the canary changed, by hand: the running rollout ends (the champion keeps
 * serving), or with none running, the champion alias goes back to the version the promotion
 * that made the current champion replaced. Either is a stored `rollback` decision and a
 * `rollout.changed` event. Returns what happened, in a sentence.
 */
export async function rollBackChampion(
  api: BerthaApi,
  model: string,
  reason: string,
): Promise<{ rollout: RolloutJson; summary: string }> {
  const running = (await listRollouts(api)).find((rollout) => rollout.model === model && rollout.status === 'running');
  if (running) {
    const ended = await api.request<RolloutJson>('POST', '/v1/rollouts/rollback', { reason });
    return {
      rollout: ended,
      summary: `${model}: canary ${ended.id} rolled back (${ended.challenger_version} served ${percent(running.share)}); ${ended.champion_version} serves every conversation`,
    };
  }
  let champion: string;
  try {
    const alias = await api.request<{ model_version: { version: string } }>(
      'GET',
      `/api/2.0/mlflow/registered-models/alias?name=${encodeURIComponent(model)}&alias=${CHAMPION}`,
    );
    champion = qualifiedVersion(model, alias.model_version.version);
  } catch (error) {
    if (BerthaError.isInstance(error) && error.status === 404) {
      throw new BerthaError('not_found', `${model} has no ${CHAMPION} alias: there is no promotion to roll back`, 404);
    }
    throw error;
  }
  const reverted = await api.request<RolloutJson>('POST', '/v1/rollouts/revert', {
    champion_version: champion,
    reason,
  });
  return {
    rollout: reverted,
    summary: `${model}: ${CHAMPION} ${champion} -> ${reverted.champion_version} (the promotion by rollout ${reverted.id} is rolled back)`,
  };
}

export function registerRolloutCommand(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('canary rollouts: status with both arms and every decision, list, start by hand');

  rollout
    .command('status [id]')
    .description('one rollout (default: the running one, else the newest): versions, share, arms, decisions')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, options: { json?: boolean }, command: Command) =>
      withApi(command, async (api, config) => {
        let rolloutId = id;
        if (!rolloutId) {
          const rollouts = await listRollouts(api);
          const chosen =
            rollouts.find((item) => item.status === 'running' && item.model === config.tracking.model) ??
            rollouts.find((item) => item.status === 'running') ??
            rollouts[0];
          if (!chosen) {
            process.stdout.write(options.json ? 'null\n' : `no rollouts in ${api.target}\n`);
            return;
          }
          rolloutId = chosen.id;
        }
        const detail = await api.request<RolloutDetailJson>('GET', `/v1/rollouts/${encodeURIComponent(rolloutId)}`);
        process.stdout.write(options.json ? `${JSON.stringify(detail, null, 2)}\n` : formatRollout(detail));
      }),
    );

  rollout
    .command('list')
    .description('rollouts, newest first')
    .option('-n, --max <n>', 'most rollouts to show', '20')
    .option('--json', 'print JSON')
    .action(async (options: { max: string; json?: boolean }, command: Command) =>
      withApi(command, async (api) => {
        const rollouts = await listRollouts(api, Number(options.max));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(rollouts, null, 2)}\n`);
          return;
        }
        if (rollouts.length === 0) {
          process.stdout.write(`no rollouts in ${api.target}\n`);
          return;
        }
        const rows = [['ID', 'STATUS', 'SHARE', 'CHAMPION', 'CHALLENGER', 'STARTED', 'LAST REASON']];
        for (const item of rollouts) {
          rows.push([
            item.id,
            item.status,
            percent(item.share),
            item.champion_version,
            item.challenger_version,
            when(item.created_at),
            item.reason ?? '-',
          ]);
        }
        process.stdout.write(`${table(rows)}\n`);
      }),
    );

  rollout
    .command('start <challenger>')
    .description('start a canary of a version (e.g. 3 or bertha-chat/3) against the champion')
    .option('--champion <version>', 'compare with this version instead of the one chat serves')
    .option('-r, --reason <text>', 'why, stored with the start decision', 'started by hand')
    .action(async (challenger: string, options: { champion?: string; reason: string }, command: Command) =>
      withApi(command, async (api, config) => {
        const model = config.tracking.model;
        const started = await api.request<RolloutJson>('POST', '/v1/rollouts', {
          challenger_version: qualifiedVersion(model, challenger),
          ...(options.champion ? { champion_version: qualifiedVersion(model, options.champion) } : {}),
          reason: options.reason,
        });
        process.stdout.write(
          `${started.id}: ${started.challenger_version} serves ${percent(started.share)} of conversations, ${started.champion_version} the rest\n`,
        );
      }),
    );
}
