import { type Embedder, l2Normalise } from './embedder.ts';

/** 32-bit FNV-1a over a string's UTF-16 code units, then mixed. */
function fnv1a(text: string, seed = 0x811c9dc5): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // MurmurHash3's finaliser: FNV's low bits alone pick buckets unevenly.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

const WORD = /[\p{L}\p{N}]+/gu;

/**
 * The built-in embedder: no model, no download. It is LEXICAL: hashed features of words,
 * word pairs and character trigrams (so it matches shared words and spellings, not
 * meaning), with sublinear term weights, signed hashing to `dimensions` buckets, and L2
 * normalisation so a dot product is a cosine.
 */
export function createLexicalEmbedder(options: { dimensions: number }): Embedder {
  const dimensions = options.dimensions;

  function add(counts: Map<number, number>, feature: string, weight: number) {
    const hash = fnv1a(feature);
    counts.set(hash, (counts.get(hash) ?? 0) + weight);
  }

  function embedOne(text: string): Float32Array {
    const counts = new Map<number, number>();
    const words = text.toLowerCase().match(WORD) ?? [];
    let previous: string | undefined;
    for (const word of words) {
      add(counts, `w:${word}`, 1);
      if (previous) add(counts, `b:${previous} ${word}`, 0.5);
      previous = word;
      const padded = `^${word}$`;
      for (let i = 0; i + 3 <= padded.length; i++) add(counts, `c:${padded.slice(i, i + 3)}`, 0.25);
    }
    const vector = new Float32Array(dimensions);
    for (const [hash, count] of counts) {
      const sign = hash & 0x80000000 ? -1 : 1;
      const index = (hash & 0x7fffffff) % dimensions;
      const weight = count <= 1 ? count : 1 + Math.log(count);
      vector[index] = (vector[index] as number) + sign * weight;
    }
    return l2Normalise(vector);
  }

  return {
    id: `lexical-${dimensions}`,
    dimensions,
    async embed(texts, signal) {
      const vectors: Float32Array[] = [];
      for (const text of texts) {
        signal?.throwIfAborted();
        vectors.push(embedOne(text));
      }
      return vectors;
    },
    async close() {},
  };
}
