export type { UnsupportedBaseCode } from './errors.ts';
export { UnsupportedBaseError } from './errors.ts';
export type { GgmlTypeName } from './ggml-types.ts';
export { GGML_TYPES, ggmlRowBytes, ggmlTypeByCode } from './ggml-types.ts';
export { float16BitsToFloat32 } from './half.ts';
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
export type { LlamaBase, LlamaBaseHyperparameters } from './llama-base.ts';
export { llamaBaseFromHeader, readLlamaBase } from './llama-base.ts';
export type { LoraAdapterSpec, LoraWeight } from './lora.ts';
export { buildLoraGguf, writeLoraGguf } from './lora.ts';
export type { PreTokenizer, PreTokenizerScheme } from './pre-tokenizer.ts';
export { preTokenize, resolvePreTokenizer, SUPPORTED_PRE_TOKENIZERS } from './pre-tokenizer.ts';
export type { QuantizedTypeName } from './quantize.ts';
export { DEQUANTIZABLE_TYPES, dequantize, QUANTIZED_TYPES, quantize } from './quantize.ts';
export type { GgufFileReader, GgufHeader, GgufTensorInfo } from './reader.ts';
export { isGgufFile, openGguf, readGgufHeader } from './reader.ts';
export type { GgufTokenizer, TokenizeOptions } from './tokenizer.ts';
export { createGgufTokenizer } from './tokenizer.ts';
export type { GgufVocabulary } from './vocabulary.ts';
export { TokenAttr, vocabularyFromMetadata } from './vocabulary.ts';
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
