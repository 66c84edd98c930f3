import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { createBertha } from '../../app.ts';
import { createLogger } from '../../core/logger.ts';
import { type IngestResult, ingestObject } from '../../knowledge/index.ts';
import { unsafeKeyReason } from '../../objects/index.ts';
import { configFrom } from '../options.ts';

interface FileToIngest {
  file: string;
  /** Key relative to the documents prefix: the path under the given folder, or the file name. */
  relative: string;
}

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

export function registerIngestCommand(program: Command): void {
  program
    .command('ingest')
    .description('upload files or folders to the knowledge base and ingest them (load, split, embed, index)')
    .argument('<paths...>', 'files or folders (folders are read recursively; dot-files are skipped)')
    .option('--no-wait', 'only store and announce the objects (object.created); a running `bertha up` ingests them')
    .action(async (paths: string[], options: { wait: boolean }, command: Command) => {
      const { config } = configFrom(command);
      // Logs would tear the progress bar; failures are reported in the summary instead.
      const bertha = await createBertha(config, { logger: createLogger('warn') });
      const files = await collect(paths);
      const bar = new cliProgress.SingleBar(
        { format: 'ingesting [{bar}] {value}/{total} {file}', hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(files.length, 0, { file: '' });
      const results: Array<IngestResult | { key: string; status: 'stored' | 'refused'; error?: string }> = [];
      try {
        for (const item of files) {
          const key = `${config.objects.documentsPrefix}${item.relative}`;
          bar.update({ file: item.relative });
          const unsafe = unsafeKeyReason(key);
          if (unsafe) {
            results.push({ key, status: 'refused', error: unsafe });
          } else {
            const info = await bertha.objects.put(key, await readFile(item.file));
            await bertha.bus.publish({
              type: 'object.created',
              source: 'cli',
              subject: key,
              payload: { key, etag: info.etag, size: info.size },
            });
            results.push(options.wait ? await ingestObject(bertha.knowledge, key) : { key, status: 'stored' });
          }
          bar.increment();
        }
      } finally {
        bar.stop();
        await bertha.close();
      }
      const counts = new Map<string, number>();
      for (const result of results) counts.set(result.status, (counts.get(result.status) ?? 0) + 1);
      const chunks = results.reduce((sum, result) => sum + ('chunkCount' in result ? result.chunkCount : 0), 0);
      process.stdout.write(
        `${files.length} files: ${[...counts].map(([status, count]) => `${count} ${status}`).join(', ')}; ${chunks} chunks written\n`,
      );
      for (const result of results) {
        if ('error' in result && result.error)
          process.stdout.write(`  ${result.status}: ${result.key}: ${result.error}\n`);
      }
      if (results.some((result) => result.status === 'failed' || result.status === 'refused')) process.exitCode = 1;
    });
}
