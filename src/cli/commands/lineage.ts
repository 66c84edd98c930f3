import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import { BerthaError, ValidationError } from '../../core/errors.ts';
import { type LineageGraph, parseNodeRef, renderLineageTree } from '../../lineage/index.ts';
import { configFrom } from '../options.ts';
import { openServerFetch } from '../server-fetch.ts';
import { openBerthaApi } from './rollout.ts';

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: an ISO time, or how long ago (`30m`, `12h`, `7d`). */
function sinceTime(text: string): string {
  const ago = /^(\d+)([mhd])$/.exec(text);
  if (ago) return new Date(Date.now() - Number(ago[1]) * (UNITS[ago[2] as string] as number)).toISOString();
  const time = Date.parse(text);
  if (Number.isNaN(time)) throw new ValidationError(`--since: '${text}' is neither an ISO time nor a duration like 7d`);
  return new Date(time).toISOString();
}

export function registerLineageCommand(program: Command): void {
  const lineage = program
    .command('lineage')
    .description(
      'what a node of the loop came from and what it led to, as a tree: `bertha lineage <id>` (an answer, feedback, run, model version, rollout ...)',
    )
    .argument('[node]', 'an id whose prefix says its kind (chatcmpl_…, fb_…, run_…, bertha-chat/3), or <kind>/<id>')
    .option('--direction <direction>', 'both, upstream or downstream', 'both')
    .option('--depth <n>', 'edges to follow in each direction', '8')
    .option('--max-nodes <n>', 'nodes at most', '300')
    .option('--json', 'print the graph as JSON')
    .action(
      async (
        node: string | undefined,
        options: { direction: string; depth: string; maxNodes: string; json?: boolean },
        command: Command,
      ) => {
        if (!node) {
          command.help();
          return;
        }
        const ref = parseNodeRef(node);
        const { config } = configFrom(command);
        const api = await openBerthaApi(config);
        try {
          const query = new URLSearchParams({
            direction: options.direction,
            depth: options.depth,
            maxNodes: options.maxNodes,
          });
          const graph = await api.request<LineageGraph>(
            'GET',
            `/v1/lineage/${ref.kind}/${ref.id.split('/').map(encodeURIComponent).join('/')}?${query}`,
          );
          process.stdout.write(options.json ? `${JSON.stringify(graph, null, 2)}\n` : `${renderLineageTree(graph)}\n`);
        } finally {
          await api.close();
        }
      },
    );

  lineage
    .command('export')
    .description('write the pipeline steps’ OpenLineage run events (START, COMPLETE, FAIL) as JSON lines')
    .option('--since <time>', 'only events at or after an ISO time, or this long ago (7d, 12h)')
    .option('--run <id>', 'only the events of one pipeline run')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (options: { since?: string; run?: string; out?: string }, command: Command) => {
      const { config } = configFrom(command);
      const query = new URLSearchParams({
        ...(options.since ? { since: sinceTime(options.since) } : {}),
        ...(options.run ? { run: options.run } : {}),
      });
      const server = await openServerFetch(config);
      try {
        const response = await server.fetch(`${server.base}/v1/lineage/openlineage?${query}`);
        if (!response.ok || !response.body) {
          const text = await response.text();
          const body = (() => {
            try {
              return (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
            } catch {
              return undefined;
            }
          })();
          throw new BerthaError(body?.code ?? `http_${response.status}`, body?.message ?? text, response.status);
        }
        const body = Readable.fromWeb(response.body as ReadableStream<Uint8Array>);
        if (options.out) await pipeline(body, createWriteStream(options.out));
        else await pipeline(body, process.stdout, { end: false });
      } finally {
        await server.close();
      }
    });
}
