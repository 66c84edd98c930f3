import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as lancedb from '@lancedb/lancedb';
import { SentenceSplitter } from '@llamaindex/core/node-parser';
import { createLogger } from '../src/core/logger.ts';
import { createSqliteDb } from '../src/db/sqlite.ts';
import { ingestObject, type KnowledgeDeps } from '../src/knowledge/index.ts';
import { createLanceVectorStore } from '../src/knowledge/lancedb.ts';
import { createLexicalEmbedder } from '../src/knowledge/lexical-embedder.ts';
import { splitText } from '../src/knowledge/splitter.ts';
import { createFsObjectStore } from '../src/objects/fs.ts';
import { percentile, reportFigures, round } from './stats.ts';

// Knowledge base: (1) Bertha's splitter vs LlamaIndex.TS's SentenceSplitter on the same 1 MB
// document; (2) end-to-end ingestion (object store -> load -> split -> lexical embed -> LanceDB
// + SQLite) in MB/s and chunks/s; (3) vector retrieval at 100k chunks of Bertha's own
// embeddings through the VectorStore port (exact SIMD scan), p50/p99 and recall@10 against a
// float64 brute force, with LanceDB's own flat search on the same table as the baseline.
const SPLIT_BYTES = Number(process.env.BENCH_SPLIT_BYTES ?? 1_000_000);
const INGEST_DOCS = 40;
const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 100_000);
const QUERIES = 300;
const DIMENSIONS = 384;
const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-knowledge-'));
const logger = createLogger('silent');

const WORDS = (
  'the a of model data retrieval vector index chunk document answer question feedback pipeline run version ' +
  'server query latency cache token prompt user system metric alert deploy rollback canary champion challenger ' +
  'embedding search filter page section heading table figure result score rank fusion recall memory disk cpu ' +
  'Rotterdam invoice refund shipping warranty battery charger screen keyboard printer network router firmware'
).split(' ');

let seed = 42;
function random(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}

function sentence(): string {
  const length = 6 + Math.floor(random() * 18);
  const words = Array.from({ length }, () => WORDS[Math.floor(random() * WORDS.length)] as string);
  const first = words[0] as string;
  words[0] = first[0]?.toUpperCase() + first.slice(1);
  return `${words.join(' ')}${random() < 0.1 ? '?' : '.'}`;
}

function prose(bytes: number): string {
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const paragraph = Array.from({ length: 3 + Math.floor(random() * 5) }, sentence).join(' ');
    parts.push(paragraph);
    size += paragraph.length + 2;
  }
  return parts.join('\n\n').slice(0, bytes);
}

// 1. Splitting.
const document = prose(SPLIT_BYTES);
const options = { chunkSize: 1000, chunkOverlap: 150 };
let start = performance.now();
const ours = splitText(document, options);
const oursMs = performance.now() - start;
// LlamaIndex sizes in tokens (~4 characters each for English): 250/38 tokens ≈ our 1000/150 characters.
const llama = new SentenceSplitter({ chunkSize: 250, chunkOverlap: 38 });
start = performance.now();
const theirs = llama.splitText(document);
const llamaMs = performance.now() - start;
const splitterSpeedup = llamaMs / oursMs;
console.log(
  `split ${(SPLIT_BYTES / 1e6).toFixed(2)} MB: bertha ${round(oursMs, 1)} ms (${ours.length} chunks), llamaindex ${round(llamaMs, 1)} ms (${theirs.length} chunks), ${round(splitterSpeedup, 1)}x`,
);

// 2. End-to-end ingestion.
const db = createSqliteDb({ path: path.join(dir, 'bertha.sqlite') });
await db.migrate();
const embedder = createLexicalEmbedder({ dimensions: DIMENSIONS });
const ingestStore = await createLanceVectorStore({
  path: path.join(dir, 'ingest-vectors'),
  dimensions: DIMENSIONS,
  table: 'chunks',
  logger,
});
const deps: KnowledgeDeps = {
  db,
  objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
  embedder,
  vectors: ingestStore,
  split: options,
  batchSize: 64,
  logger,
};
let ingestBytes = 0;
for (let i = 0; i < INGEST_DOCS; i++) {
  const body = `# Document ${i}\n\n${prose(50_000)}`;
  ingestBytes += Buffer.byteLength(body);
  await deps.objects.put(`documents/doc-${i}.md`, body);
}
start = performance.now();
let ingestChunks = 0;
for (let i = 0; i < INGEST_DOCS; i++) ingestChunks += (await ingestObject(deps, `documents/doc-${i}.md`)).chunkCount;
const ingestSeconds = (performance.now() - start) / 1000;
const ingestMbPerS = ingestBytes / 1e6 / ingestSeconds;
console.log(
  `ingest ${INGEST_DOCS} docs, ${(ingestBytes / 1e6).toFixed(2)} MB: ${round(ingestSeconds, 2)} s, ${round(ingestMbPerS, 3)} MB/s, ${Math.round(ingestChunks / ingestSeconds)} chunks/s`,
);
await ingestStore.close();
await db.close();

// 3. Retrieval at CHUNKS chunks.
const tablePath = path.join(dir, 'vectors');
(await createLanceVectorStore({ path: tablePath, dimensions: DIMENSIONS, table: 'chunks', logger })).close();
const texts: string[] = [];
const matrix = new Float32Array(CHUNKS * DIMENSIONS);
const connection = await lancedb.connect(tablePath);
const table = await connection.openTable('chunks');
start = performance.now();
for (let base = 0; base < CHUNKS; base += 10_000) {
  const rows = [];
  for (let i = base; i < Math.min(CHUNKS, base + 10_000); i++) {
    const text = Array.from({ length: 4 }, sentence).join(' ');
    texts.push(text);
    const [vector] = await embedder.embed([text]);
    matrix.set(vector as Float32Array, i * DIMENSIONS);
    rows.push({
      id: `c${i}`,
      document_id: `d${i >> 6}`,
      document_key: `documents/d${i >> 6}.md`,
      document_version: 'v1',
      ordinal: i & 63,
      text,
      metadata_json: '{}',
      vector: Array.from(vector as Float32Array),
    });
  }
  await table.add(rows);
}
console.log(`embedded and stored ${CHUNKS} chunks in ${round((performance.now() - start) / 1000, 1)} s`);
start = performance.now();
const store = await createLanceVectorStore({ path: tablePath, dimensions: DIMENSIONS, table: 'chunks', logger });
console.log(`opened the store (loads the exact-scan matrix) in ${round((performance.now() - start) / 1000, 1)} s`);

const queries: Float32Array[] = [];
for (let q = 0; q < QUERIES; q++) {
  // A query shares some words with a stored chunk, as a user's question does.
  const words = (texts[Math.floor(random() * CHUNKS)] as string).split(' ');
  const picked = words.filter(() => random() < 0.4).join(' ') || (words[0] as string);
  queries.push((await embedder.embed([picked]))[0] as Float32Array);
}

function exactTop10(query: Float32Array): string[] {
  const scores = new Float64Array(CHUNKS);
  for (let row = 0; row < CHUNKS; row++) {
    let dot = 0;
    const offset = row * DIMENSIONS;
    for (let j = 0; j < DIMENSIONS; j++) dot += (matrix[offset + j] as number) * (query[j] as number);
    scores[row] = dot;
  }
  const order = Array.from(scores.keys()).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  return order.slice(0, 10).map((row) => `c${row}`);
}

// Warm up, then time the queries alone; ground truth is computed afterwards so its garbage
// collection cannot land inside a timed query.
for (const query of queries.slice(0, 20)) await store.search({ mode: 'vector', topK: 10, vector: query });
const latencies: number[] = [];
const results: string[][] = [];
for (const query of queries) {
  const t0 = performance.now();
  const hits = await store.search({ mode: 'vector', topK: 10, vector: query });
  latencies.push(performance.now() - t0);
  results.push(hits.map((hit) => hit.chunk.id));
}
let recallSum = 0;
queries.forEach((query, q) => {
  const truth = new Set(exactTop10(query));
  recallSum += (results[q] as string[]).filter((id) => truth.has(id)).length / 10;
});
const recall = recallSum / QUERIES;

const hybridLatencies: number[] = [];
for (let q = 0; q < 100; q++) {
  const words = (texts[Math.floor(random() * CHUNKS)] as string).split(' ').slice(0, 6).join(' ');
  const t0 = performance.now();
  await store.search({ mode: 'hybrid', topK: 10, vector: (await embedder.embed([words]))[0], text: words });
  hybridLatencies.push(performance.now() - t0);
}

const lanceLatencies: number[] = [];
for (const query of queries.slice(0, 50)) {
  const t0 = performance.now();
  await table.vectorSearch(Array.from(query)).distanceType('dot').select(['id', '_distance']).limit(10).toArray();
  lanceLatencies.push(performance.now() - t0);
}
await store.close();
table.close();
connection.close();
rmSync(dir, { recursive: true, force: true });

const p50 = percentile(latencies, 50);
const p99 = percentile(latencies, 99);
const lanceP50 = percentile(lanceLatencies, 50);
const lanceP99 = percentile(lanceLatencies, 99);
console.log(
  `retrieval at ${CHUNKS} chunks (exact scan): p50 ${round(p50, 2)} ms, p99 ${round(p99, 2)} ms, recall@10 ${round(recall, 4)}`,
);
console.log(
  `hybrid (exact scan + LanceDB BM25, RRF, query embedding included): p50 ${round(percentile(hybridLatencies, 50), 2)} ms, p99 ${round(percentile(hybridLatencies, 99), 2)} ms`,
);
console.log(
  `lancedb flat search, same table:   p50 ${round(lanceP50, 2)} ms, p99 ${round(lanceP99, 2)} ms (${round(lanceP50 / p50, 1)}x slower at p50)`,
);
reportFigures({
  splitter_speedup_vs_llamaindex: round(splitterSpeedup, 1),
  splitter_ms_1mb: round(oursMs, 1),
  llamaindex_splitter_ms_1mb: round(llamaMs, 1),
  ingest_mb_per_s: round(ingestMbPerS, 3),
  ingest_chunks_per_s: Math.round(ingestChunks / ingestSeconds),
  retrieval_p50_ms: round(p50, 2),
  retrieval_p99_ms: round(p99, 2),
  recall_at_10: round(recall, 4),
  hybrid_p50_ms: round(percentile(hybridLatencies, 50), 2),
  hybrid_p99_ms: round(percentile(hybridLatencies, 99), 2),
  lancedb_flat_p50_ms: round(lanceP50, 2),
  lancedb_flat_p99_ms: round(lanceP99, 2),
  retrieval_speedup_vs_lancedb_flat: round(lanceP50 / p50, 1),
});
