import { ValidationError } from '../core/errors.ts';
import { type LlamaHyperparameters, writeLlamaGguf, writeLoraGguf } from '../gguf/index.ts';
import { readAdapterCheckpoint, readModelCheckpoint } from './job.ts';
import type { LlamaConfig } from './model.ts';
import { type BpeTokenizer, type BpeVocabulary, bpeTokenizer, PRE_TOKENIZER } from './tokenizer.ts';

/** Checkpoint metadata key holding the model's tokenizer, so that fine-tuning can tokenize new text. */
export const CHECKPOINT_TOKENIZER = 'bertha.tokenizer';

export function tokenizerMetadata(vocabulary: BpeVocabulary): Record<string, string> {
  const { tokens, tokenTypes, merges, endOfTextId } = vocabulary;
  return { [CHECKPOINT_TOKENIZER]: JSON.stringify({ tokens, tokenTypes, merges, endOfTextId }) };
}

export function tokenizerFromMetadata(metadata: Record<string, string>): BpeTokenizer {
  const json = metadata[CHECKPOINT_TOKENIZER];
  if (!json) throw new ValidationError('the checkpoint carries no tokenizer');
  return bpeTokenizer(JSON.parse(json) as BpeVocabulary);
}

export function llamaHyperparameters(config: LlamaConfig): LlamaHyperparameters {
  return {
    nVocab: config.vocabSize,
    nCtx: config.contextLength,
    nEmbd: config.embeddingLength,
    nLayer: config.blockCount,
    nHead: config.headCount,
    nHeadKv: config.headCount,
    nFf: config.feedForwardLength,
    ropeFreqBase: config.ropeFreqBase,
    rmsEps: config.rmsEps,
  };
}

/**
 * Writes a Bertha checkpoint as a llama GGUF. ggml's ne [in, out] data is row-major
 * [out, in], the layout src/gguf expects, so the values go through unchanged.
 */
export async function exportModelGguf(
  checkpointPath: string,
  ggufPath: string,
  options: { name?: string; signal?: AbortSignal } = {},
): Promise<{ bytes: number; config: LlamaConfig }> {
  const { config, values, metadata } = await readModelCheckpoint(checkpointPath);
  const tokenizer = tokenizerFromMetadata(metadata);
  if (tokenizer.tokens.length !== config.vocabSize) {
    throw new ValidationError(`the tokenizer has ${tokenizer.tokens.length} tokens, the model ${config.vocabSize}`);
  }
  const { bytes } = await writeLlamaGguf(
    ggufPath,
    {
      name: options.name ?? 'bertha-starter',
      hparams: llamaHyperparameters(config),
      tokenizer: {
        model: 'gpt2',
        tokens: tokenizer.tokens,
        merges: tokenizer.merges,
        tokenTypes: tokenizer.tokenTypes as (1 | 3)[],
        pre: PRE_TOKENIZER,
        bosId: tokenizer.endOfTextId,
        eosId: tokenizer.endOfTextId,
        addBos: false,
        addEos: false,
      },
      tensors: values,
    },
    options.signal,
  );
  return { bytes, config };
}

/** Writes a Bertha LoRA checkpoint as a llama.cpp LoRA adapter GGUF (same data layout as the model). */
export async function exportLoraGguf(
  adapterPath: string,
  ggufPath: string,
  options: { name?: string; signal?: AbortSignal } = {},
): Promise<{ bytes: number }> {
  const { config, lora, values } = await readAdapterCheckpoint(adapterPath);
  const weights = [...values.keys()]
    .filter((name) => name.endsWith('.lora_a'))
    .map((name) => {
      const target = name.slice(0, -'.lora_a'.length);
      const b = values.get(`${target}.lora_b`);
      if (!b) throw new ValidationError(`${adapterPath} lacks ${target}.lora_b`);
      return { target, rank: lora.rank, a: values.get(name) as Float32Array, b };
    });
  return writeLoraGguf(
    ggufPath,
    { alpha: lora.alpha, weights, name: options.name ?? 'bertha-lora', base: llamaHyperparameters(config) },
    options.signal,
  );
}
