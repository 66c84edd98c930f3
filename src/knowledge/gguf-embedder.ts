import path from 'node:path';
import { getLlama, type LlamaEmbeddingContext, type LlamaModel } from 'node-llama-cpp';
import { LLAMA_CMAKE_OPTIONS } from '../native/llama-cpp-libs.ts';
import { type Embedder, l2Normalise } from './embedder.ts';
import { EmbedderError } from './errors.ts';

export interface GgufEmbedderOptions {
  modelPath: string;
  /** CPU threads; on 2 cores the library's default of 4 ran many times slower (FACTS.md). */
  threads: number;
}

/** A GGUF embedding model (e.g. nomic-embed, bge, all-MiniLM in GGUF) through node-llama-cpp. */
export async function createGgufEmbedder(options: GgufEmbedderOptions): Promise<Embedder> {
  let model: LlamaModel;
  let context: LlamaEmbeddingContext;
  try {
    const llama = await getLlama({
      build: 'never',
      cmakeOptions: { ...LLAMA_CMAKE_OPTIONS },
      maxThreads: options.threads,
    });
    model = await llama.loadModel({ modelPath: path.resolve(options.modelPath) });
    context = await model.createEmbeddingContext({ threads: options.threads });
  } catch (error) {
    throw new EmbedderError(`cannot load GGUF embedding model ${options.modelPath}: ${(error as Error).message}`, {
      modelPath: options.modelPath,
    });
  }
  const dimensions = model.embeddingVectorSize;
  const name = path.basename(options.modelPath).replace(/\.gguf$/i, '');
  // The context evaluates one sequence at a time; queue callers instead of interleaving them.
  let queue: Promise<unknown> = Promise.resolve();

  return {
    id: `gguf-${name}-${dimensions}`,
    dimensions,
    embed(texts, signal) {
      const work = queue.then(async () => {
        const vectors: Float32Array[] = [];
        for (const text of texts) {
          signal?.throwIfAborted();
          // Longer inputs than the context would fail; the splitter keeps chunks well under it.
          const embedding = await context.getEmbeddingFor(text);
          vectors.push(l2Normalise(Float32Array.from(embedding.vector)));
        }
        return vectors;
      });
      queue = work.catch(() => undefined);
      return work;
    },
    async close() {
      await context.dispose();
      await model.dispose();
    },
  };
}
