import OpenAI from 'openai';
import { type Embedder, l2Normalise } from './embedder.ts';
import { EmbedderError } from './errors.ts';

export interface OpenAiEmbedderOptions {
  /** e.g. `http://127.0.0.1:8000/v1` (vLLM, llama.cpp server, Ollama) or OpenAI's. */
  baseUrl: string;
  model: string;
  apiKey?: string | undefined;
  batchSize: number;
}

/** Any OpenAI-compatible `POST /v1/embeddings` server. The vector size is learnt from the first answer. */
export async function createOpenAiEmbedder(options: OpenAiEmbedderOptions): Promise<Embedder> {
  const client = new OpenAI({ baseURL: options.baseUrl, apiKey: options.apiKey || 'unused', maxRetries: 2 });

  async function embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const vectors: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += options.batchSize) {
      const batch = texts.slice(start, start + options.batchSize);
      let response: OpenAI.CreateEmbeddingResponse;
      try {
        response = await client.embeddings.create(
          { model: options.model, input: batch, encoding_format: 'float' },
          signal ? { signal } : {},
        );
      } catch (error) {
        throw new EmbedderError(`embedding request to ${options.baseUrl} failed: ${(error as Error).message}`);
      }
      const ordered = [...response.data].sort((a, b) => a.index - b.index);
      if (ordered.length !== batch.length) {
        throw new EmbedderError(`embedding server returned ${ordered.length} vectors for ${batch.length} inputs`);
      }
      for (const item of ordered) vectors.push(l2Normalise(Float32Array.from(item.embedding)));
    }
    return vectors;
  }

  const [probe] = await embed(['dimension probe']);
  const dimensions = probe?.length ?? 0;
  return {
    id: `openai-${options.model.replace(/[^A-Za-z0-9._-]/g, '_')}-${dimensions}`,
    dimensions,
    embed,
    async close() {},
  };
}
