import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * `npm run bench -- <name>` runs bench/<name>.ts. Convention: a benchmark prints
 * human-readable lines, then one last line that is a JSON object of its figures, each a
 * ratio or a difference against a baseline measured in the same run.
 */
const benchDir = path.dirname(fileURLToPath(import.meta.url));
const available = readdirSync(benchDir)
  .filter((file) => file.endsWith('.ts') && file !== 'run.ts' && file !== 'stats.ts')
  .map((file) => file.slice(0, -3));
const name = process.argv[2];
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <name>\navailable: ${available.join(', ')}\n`);
  process.exit(2);
}
const file = path.join(benchDir, `${name}.ts`);
if (!existsSync(file)) process.exit(2);
await import(pathToFileURL(file).href);
