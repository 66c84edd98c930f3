import { BerthaError } from '../core/errors.ts';

/** A GGUF that is malformed, or a spec the writer cannot encode. */
export class GgufError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('gguf_invalid', message, 500, details);
  }
}

/**
 * Why a well-formed GGUF cannot serve as a base for Bertha's trainer. The code is stable for clients and logs;
 * the message names what was found (the architecture, the pre-tokenizer, the tensor).
 */
export type UnsupportedBaseCode =
  | 'unsupported_architecture'
  | 'unsupported_sliding_window'
  | 'unsupported_mixture_of_experts'
  | 'unsupported_rope_scaling'
  | 'unsupported_layout'
  | 'unsupported_tokenizer'
  | 'unsupported_pre_tokenizer';

export class UnsupportedBaseError extends BerthaError {
  declare readonly code: UnsupportedBaseCode;
  constructor(code: UnsupportedBaseCode, message: string, details?: Record<string, unknown>) {
    super(code, message, 422, details);
  }
}
