/**
 * The tokenizers on real Llama vocabularies: Llama 2's SentencePiece (32,000 pieces) and Llama 3's byte-level
 * BPE (128,256 tokens, 280k merges), from the vocabulary-only GGUFs in llama.cpp's models/ folder. They are
 * taken from the llama.cpp source node-llama-cpp ships (llama/gitRelease.bundle), with the inputs and expected
 * tokens of llama.cpp's own test-tokenizer-0; the test is skipped where git or the bundle is missing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Llama, Token } from 'node-llama-cpp';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createGgufTokenizer, readGgufHeader, vocabularyFromMetadata } from '../../src/gguf/index.ts';
import { fuzzTexts, TOKENIZER_TEXTS } from './tokenizer-texts.ts';

const bundle = join(
  dirname(dirname(createRequire(import.meta.url).resolve('node-llama-cpp'))),
  'llama',
  'gitRelease.bundle',
);
const hasGit = (() => {
  try {
    execFileSync('git', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const VOCABULARIES = ['llama-spm', 'llama-bpe'] as const;
let dir: string;
let llama: Llama;

describe.skipIf(!hasGit || !existsSync(bundle))('real Llama vocabularies from llama.cpp models/', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bertha-real-vocab-'));
    const repo = join(dir, 'llama.cpp.git');
    execFileSync('git', ['init', '--quiet', '--bare', repo]);
    execFileSync('git', ['-C', repo, 'fetch', '--quiet', bundle]);
    for (const name of VOCABULARIES) {
      for (const suffix of ['', '.inp', '.out']) {
        const file = `ggml-vocab-${name}.gguf${suffix}`;
        const bytes = execFileSync('git', ['-C', repo, 'show', `FETCH_HEAD:models/${file}`], {
          maxBuffer: 64 << 20,
        });
        await writeFile(join(dir, file), bytes);
      }
    }
    await rm(repo, { recursive: true, force: true });
    // These files have no tensors: node-llama-cpp's memory estimate tries a full load first and logs a
    // 'missing tensor' error for each; the vocabulary-only load itself succeeds.
    llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });
  }, 120_000);
  afterAll(async () => {
    await llama?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test.each(VOCABULARIES)(
    '%s: llama.cpp test-tokenizer-0 expectations and node-llama-cpp agree with ours',
    async (name) => {
      const path = join(dir, `ggml-vocab-${name}.gguf`);
      const tokenizer = createGgufTokenizer(vocabularyFromMetadata((await readGgufHeader(path)).metadata));
      expect(tokenizer.vocabSize).toBe(name === 'llama-spm' ? 32000 : 128256);

      // test-tokenizer-0: inputs separated by a marker line, one line of expected ids per input (add_special off).
      const inputs = (await readFile(`${path}.inp`, 'utf8')).split('\n__ggml_vocab_test__\n').slice(0, -1);
      const expected = (await readFile(`${path}.out`, 'utf8')).split('\n').slice(0, inputs.length);
      expect(inputs.length).toBeGreaterThan(40);
      inputs.forEach((input, i) => {
        const ids = (expected[i] ?? '').trim();
        expect(tokenizer.tokenize(input).join(' '), JSON.stringify(input)).toBe(ids);
      });

      const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
      try {
        expect(tokenizer.vocabulary.addBos).toBe(model.tokens.shouldPrependBosToken);
        expect(tokenizer.vocabulary.bosId).toBe(model.tokens.bos ?? undefined);
        expect(tokenizer.vocabulary.eosId).toBe(model.tokens.eos ?? undefined);
        const mismatches: string[] = [];
        for (const text of [...inputs, ...TOKENIZER_TEXTS, ...fuzzTexts(200, 23)]) {
          for (const parseSpecial of [false, true]) {
            const reference = Array.from(model.tokenize(text, parseSpecial));
            if (tokenizer.tokenize(text, { parseSpecial }).join(' ') !== reference.join(' ')) {
              mismatches.push(`${JSON.stringify(text)} special=${parseSpecial}`);
            }
            if (tokenizer.detokenize(reference) !== model.detokenize(reference as Token[])) {
              mismatches.push(`detokenize ${JSON.stringify(text)}`);
            }
          }
        }
        expect(mismatches).toEqual([]);
      } finally {
        await model.dispose();
      }
    },
  );
});
