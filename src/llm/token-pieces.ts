import type { LlamaModel, Token } from 'node-llama-cpp';

/**
 * Splits a piece of answer text that LlamaChat released for several tokens at once into one
 * piece per token, as llama.cpp's server streams them. LlamaChat holds tokens back while they
 * might begin a stop trigger or spell only part of a character, then releases them together;
 * a client counting chunks as tokens would undercount.
 *
 * A token's piece is what it adds to the text detokenized so far (after `trail`, the tokens
 * released before, which decide spacing); a token that completes no character yet adds
 * nothing, and its bytes go out with the token that completes it. The pieces always join to
 * `text`: when detokenizing token by token does not reproduce it, the rest goes out whole.
 */
export function piecesPerToken(
  model: LlamaModel,
  tokens: readonly Token[],
  text: string,
  trail: readonly Token[],
): string[] {
  if (tokens.length <= 1) return text ? [text] : [];
  const pieces: string[] = [];
  let emitted = '';
  for (let end = 1; end < tokens.length; end++) {
    const sofar = model.detokenize(tokens.slice(0, end), false, trail);
    if (sofar.length > emitted.length && sofar.startsWith(emitted) && text.startsWith(sofar)) {
      pieces.push(sofar.slice(emitted.length));
      emitted = sofar;
    }
  }
  if (text.length > emitted.length) pieces.push(text.slice(emitted.length));
  return pieces;
}
