import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { type Bertha, createBertha } from '../../app.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { createObjectChangeFeed, publishObjectEvent } from '../../events/index.ts';
import {
  ACCEPTED_FORMATS,
  createDocumentStore,
  type IngestResult,
  ingestRefusal,
  UnsupportedDocumentError,
} from '../../knowledge/index.ts';
import { readObject, unsafeKeyReason } from '../../objects/index.ts';
import type { RunRecord } from '../../pipelines/index.ts';
import { configFrom } from '../options.ts';

interface FileToIngest {
  file: string;
  /** Key relative to the documents prefix: the path under the given folder, or the file name. */
  relative: string;
}

/** What became of one file: refused before storing, only stored (`--no-wait`), or its run's result. */
interface FileOutcome {
  key: string;
  status: IngestResult['status'] | 'refused' | 'stored' | 'cancelled';
  chunkCount?: number;
  error?: string;
  runId?: string;
  /** Refused for its format: the summary then lists the accepted ones once. */
  unsupported?: boolean;
}

const PIPELINE = 'vector-ingestion';
const POLL_MS = 100;

async function* walk(folder: string, base: string): AsyncGenerator<FileToIngest> {
  const entries = await readdir(folder, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) yield* walk(full, base);
    else if (entry.isFile()) yield { file: full, relative: path.relative(base, full).split(path.sep).join('/') };
  }
}

async function collect(inputs: string[]): Promise<FileToIngest[]> {
  const files: FileToIngest[] = [];
  for (const input of inputs) {
    const resolved = path.resolve(input);
    const stats = await stat(resolved);
    if (stats.isDirectory()) for await (const item of walk(resolved, resolved)) files.push(item);
    else files.push({ file: resolved, relative: path.basename(resolved) });
  }
  return files;
}

/**
 * The terminal is for the progress bar and the summary, which reports what happened to each
 * file. JSON records there would tear the bar and mean nothing to a user (llama.cpp's warnings,
 * when a model loads, among them), so below `debug` only errors show, one plain line each;
 * `log.level: debug` or `trace` prints every record as JSON on stderr.
 */
export function terminalLogger(level: string, stream: NodeJS.WritableStream = process.stderr): Logger {
  if (level === 'debug' || level === 'trace') return createLogger(level, stream);
  const shown = level === 'fatal' || level === 'silent' ? level : 'error';
  return createLogger(shown, {
    write(line: string) {
      const {
        level: _level,
        time: _time,
        service: _service,
        component,
        msg,
        err,
        ...rest
      } = JSON.parse(line) as {
        component?: string;
        msg?: string;
        err?: { message?: string };
        [field: string]: unknown;
      };
      // A step's lines are kept with its run (`bertha pipeline logs`); its failure is in the summary.
      if (rest.runId !== undefined && rest.step !== undefined && rest.attempt !== undefined) return;
      const fields = Object.entries(rest).map(([name, value]) => ` ${name}=${JSON.stringify(value)}`);
      stream.write(
        `bertha: ${component ? `${component}: ` : ''}${msg ?? 'error'}${err?.message ? `: ${err.message}` : ''}${fields.join('')}\n`,
      );
    },
  });
}

/**
 * The vector-ingestion run for an announced file: the one a sensor launched for its event
 * (so the file gets exactly one run, whichever process runs it), or, when no sensor started
 * one (sensors configured otherwise), one started here.
 */
async function ingestionRun(bertha: Bertha, key: string, eventId: string): Promise<string> {
  await bertha.bus.drain();
  for (;;) {
    const [trigger] = await bertha.pipelines.store.triggers.list({ eventId, pipeline: PIPELINE, limit: 1 });
    if (trigger?.runId) return trigger.runId;
    if (trigger?.status !== 'pending') break;
    await sleep(POLL_MS);
  }
  const run = await bertha.pipelines.runner.startRun({ pipeline: PIPELINE, params: { key }, source: 'cli' });
  return run.id;
}

async function finishedRun(bertha: Bertha, runId: string): Promise<RunRecord> {
  for (;;) {
    const run = await bertha.pipelines.store.getRun(runId);
    if (run && (run.status === 'succeeded' || run.status === 'failed' || run.status === 'cancelled')) return run;
    await sleep(POLL_MS);
  }
}

async function outcomeOf(bertha: Bertha, key: string, run: RunRecord): Promise<FileOutcome> {
  if (run.status === 'succeeded') {
    const artifact = await bertha.pipelines.store.getArtifact(run.id, 'ingest-vectors', 'result');
    if (artifact) {
      const result = JSON.parse(
        (await readObject(bertha.objects, artifact.objectKey)).toString('utf8'),
      ) as IngestResult;
      return { key, status: result.status, chunkCount: result.chunkCount, runId: run.id };
    }
  }
  // The document holds the reason in the reader's words (a load or embedding failure); the run's error otherwise.
  const document = await createDocumentStore(bertha.db).byKey(key);
  const error = document?.status === 'failed' && document.error ? document.error : (run.error ?? `run ${run.status}`);
  return { key, status: run.status === 'cancelled' ? 'cancelled' : 'failed', error, runId: run.id };
}

export function registerIngestCommand(program: Command): void {
  program
    .command('ingest')
    .description('upload files or folders to the knowledge base and ingest them (load, split, embed, index)')
    .argument('<paths...>', 'files or folders (folders are read recursively; dot-files are skipped)')
    .option('--no-wait', 'only store and announce the objects (object.created); a running `bertha up` ingests them')
    .action(async (paths: string[], options: { wait: boolean }, command: Command) => {
      const { config } = configFrom(command);
      const bertha = await createBertha(config, { logger: terminalLogger(config.log.level), serveChat: false });
      const changes = createObjectChangeFeed({
        store: bertha.objects,
        db: bertha.db,
        bus: bertha.bus,
        prefix: config.objects.documentsPrefix,
        source: 'cli',
        logger: bertha.logger,
      });
      const files = await collect(paths);
      const bar = new cliProgress.SingleBar(
        { format: 'ingesting [{bar}] {value}/{total} {file}', hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(files.length, 0, { file: '' });
      const outcomes: FileOutcome[] = [];
      const announced: Array<{ index: number; key: string; eventId: string }> = [];
      try {
        // Runs launched from this command's events execute here unless a running `bertha up` claims them first.
        if (options.wait) bertha.pipelines.runner.start();
        for (const item of files) {
          const key = `${config.objects.documentsPrefix}${item.relative}`;
          bar.update({ file: item.relative });
          const unsafe = unsafeKeyReason(key);
          const bytes = unsafe ? undefined : await readFile(item.file);
          const refusal = bytes ? ingestRefusal(key, bytes) : undefined;
          if (!bytes || refusal) {
            outcomes.push({
              key,
              status: 'refused',
              error: unsafe ?? refusal?.reason,
              unsupported: refusal instanceof UnsupportedDocumentError,
            });
            bar.increment();
            continue;
          }
          const info = await bertha.objects.put(key, bytes);
          // A watcher (of a running or the next `bertha up`) must not announce this version again: one file, one run.
          await changes.note(key, info);
          const { event } = await publishObjectEvent(bertha.bus, {
            type: 'object.created',
            source: 'cli',
            key,
            etag: info.etag,
            size: info.size,
          });
          outcomes.push({ key, status: 'stored' });
          if (options.wait) announced.push({ index: outcomes.length - 1, key, eventId: event.id });
          else bar.increment();
        }
        for (const { index, key, eventId } of announced) {
          bar.update({ file: key.slice(config.objects.documentsPrefix.length) });
          const run = await finishedRun(bertha, await ingestionRun(bertha, key, eventId));
          outcomes[index] = await outcomeOf(bertha, key, run);
          bar.increment();
        }
      } finally {
        bar.stop();
        await bertha.close();
      }
      const counts = new Map<string, number>();
      for (const outcome of outcomes) counts.set(outcome.status, (counts.get(outcome.status) ?? 0) + 1);
      const chunks = outcomes.reduce((sum, outcome) => sum + (outcome.chunkCount ?? 0), 0);
      process.stdout.write(
        `${files.length} files: ${[...counts].map(([status, count]) => `${count} ${status}`).join(', ')}; ${chunks} chunks written\n`,
      );
      for (const outcome of outcomes) {
        if (!outcome.error) continue;
        const run = outcome.runId ? ` (run ${outcome.runId})` : '';
        process.stdout.write(`  ${outcome.status}: ${outcome.key}: ${outcome.error}${run}\n`);
      }
      if (outcomes.some((outcome) => outcome.unsupported))
        process.stdout.write(`accepted formats: ${ACCEPTED_FORMATS}\n`);
      if (outcomes.some((outcome) => ['failed', 'refused', 'cancelled'].includes(outcome.status))) process.exitCode = 1;
    });
}
