export type {
  BytePairTokenizerSpec,
  LlamaHyperparameters,
  LlamaModelSpec,
  LlamaTokenizerSpec,
  SentencePieceTokenizerSpec,
} from './llama.ts';
export {
  BYTE_LEVEL_CHARS,
  buildLlamaGguf,
  byteLevelText,
  checkLlamaHyperparameters,
  DEFAULT_BPE_PRE_TOKENIZER,
  LLAMA2_CHAT_TEMPLATE,
  llamaTensorShapes,
  TokenType,
  writeLlamaGguf,
} from './llama.ts';
export type { LoraAdapterSpec, LoraWeight } from './lora.ts';
export { buildLoraGguf, writeLoraGguf } from './lora.ts';
export type {
  GgufArrayValue,
  GgufBigIntType,
  GgufFile,
  GgufNumberType,
  GgufScalarValue,
  GgufTensor,
  GgufTensorType,
  GgufValue,
} from './writer.ts';
export { encodeGguf, float32ToFloat16Bits, GGUF_DEFAULT_ALIGNMENT, GgufError, gguf, writeGguf } from './writer.ts';
