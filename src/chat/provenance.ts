import { createHash } from 'node:crypto';
import type { ChatMessage, GenerationParams, ResponseFormat, ToolChoice, ToolDefinition } from '../llm/index.ts';
import type { BundleFiles, ModelBundle } from '../models/index.ts';
import type { AnswerSource } from './answers.ts';
import type { PromptSettings } from './prompt.ts';

/**
 * What produced one answer, by content rather than by name: the weights (file digests, or the
 * upstream model), the prompt template, the settings generation and retrieval actually used,
 * and the document versions of the passages in the prompt.
 */
export interface AnswerProvenance {
  modelVersion: string;
  base:
    | { kind: 'gguf'; digest: string; file: string; bytes: number }
    | { kind: 'upstream'; model: string; baseUrl: string };
  /** LoRA adapters on the base, in the order they were applied; empty for none. */
  adapters: Array<{ digest: string; file: string; bytes: number; scale: number }>;
  template: TemplateStamp & {
    /**
     * Whose system prompt the answer was given: the server's (the bundle's, else
     * `serving.systemPrompt`; the one in `digest`) or the request's own system message.
     */
    systemPrompt: 'server' | 'request';
  };
  generation: EffectiveGeneration;
  retrieval: {
    /** Whether passages were searched for this answer (the bundle allows it and a retriever is wired). */
    enabled: boolean;
    topK: number;
    /** `vector`, `fulltext` or `hybrid`; null when not known (no retriever, or one given from outside). */
    mode: string | null;
    /** The embedder's id (model and size); null when not known. */
    embedder: string | null;
  };
  /** The knowledge-base snapshot the answer read: each document version of its passages, once. */
  knowledge: Array<{ documentId: string; documentKey: string; version: string }>;
}

/** The settings the runtime was given, defaults filled and `max_tokens` as the context budget granted it. */
export interface EffectiveGeneration {
  temperature: number;
  topP: number;
  /** What generation was allowed. */
  maxTokens: number;
  /** What the request (or the bundle, or the serving default) asked for, before the context budget. */
  maxTokensRequested: number;
  /** Null: a fresh random seed, not reproducible. */
  seed: number | null;
  stop: string[];
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: Record<string, number> | null;
  responseFormat: 'text' | ResponseFormat['type'];
  /** Alternatives per token when log-probabilities were asked; null when not. */
  logprobs: number | null;
  /** Names of the functions the model was shown (none with `tool_choice: none`). */
  tools: string[];
  /** `none`, `auto`, `required`, or the one function it had to call. */
  toolChoice: string;
}

/** The prompt template an answer was built with, identified by the digest of its text. */
export interface TemplateStamp {
  /** A short name for this exact template text: `tpl-` and the digest's first 12 hex digits. */
  id: string;
  /** `sha256:` of the system prompt, the context template and the fallback chat template together. */
  digest: string;
}

/** Bertha's part of a served bundle's provenance, known once its files are digested. */
export interface BundleStamp {
  modelVersion: string;
  base: AnswerProvenance['base'];
  adapters: AnswerProvenance['adapters'];
  template: TemplateStamp;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The template a bundle's answers are built with. The GGUF's own chat template, when it has
 * one, is part of the base digest; the configured one is the fallback the runtime uses otherwise.
 */
export function templateStamp(bundle: ModelBundle, prompt: PromptSettings, chatTemplate: string): TemplateStamp {
  const hex = sha256(
    JSON.stringify({
      systemPrompt: bundle.systemPrompt ?? prompt.systemPrompt,
      contextTemplate: prompt.contextTemplate,
      chatTemplate: bundle.chatTemplate ?? chatTemplate,
    }),
  );
  return { id: `tpl-${hex.slice(0, 12)}`, digest: `sha256:${hex}` };
}

export function bundleStamp(
  bundle: ModelBundle,
  files: BundleFiles,
  template: TemplateStamp,
  upstreamBaseUrl: string,
): BundleStamp {
  const base: AnswerProvenance['base'] =
    files.base.kind === 'gguf'
      ? { kind: 'gguf', digest: files.base.digest, file: files.base.file, bytes: files.base.bytes }
      : { kind: 'upstream', model: files.base.model, baseUrl: withoutCredentials(upstreamBaseUrl) };
  return {
    modelVersion: bundle.version,
    base,
    adapters: files.adapters.map(({ digest, file, bytes, scale }) => ({ digest, file, bytes, scale })),
    template,
  };
}

/** A URL as it may be stored with every answer: no user name or password. */
function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** A client's own system message replaces the server's system prompt (`buildPromptMessages`). */
export function systemPromptSource(messages: ChatMessage[]): 'server' | 'request' {
  return messages[0]?.role === 'system' ? 'request' : 'server';
}

/** What the runtime was asked to do, every default filled in. */
export function effectiveGeneration(
  params: GenerationParams & { temperature: number; topP: number },
  options: {
    maxTokens: number;
    maxTokensRequested: number;
    responseFormat: ResponseFormat | undefined;
    logprobs: number | undefined;
    tools?: readonly ToolDefinition[] | undefined;
    toolChoice?: ToolChoice | undefined;
  },
): EffectiveGeneration {
  const choice = options.toolChoice ?? (options.tools ? 'auto' : 'none');
  return {
    temperature: params.temperature,
    topP: params.topP,
    maxTokens: options.maxTokens,
    maxTokensRequested: options.maxTokensRequested,
    seed: params.seed ?? null,
    stop: params.stop ?? [],
    presencePenalty: params.presencePenalty ?? 0,
    frequencyPenalty: params.frequencyPenalty ?? 0,
    logitBias: params.logitBias && Object.keys(params.logitBias).length > 0 ? { ...params.logitBias } : null,
    responseFormat: options.responseFormat?.type ?? 'text',
    logprobs: options.logprobs ?? null,
    tools: options.tools?.map((tool) => tool.name) ?? [],
    toolChoice: typeof choice === 'object' ? choice.name : choice,
  };
}

/** Each document version the passages came from, once, in the order they first appear. */
export function knowledgeSnapshot(sources: AnswerSource[]): AnswerProvenance['knowledge'] {
  const seen = new Map<string, AnswerProvenance['knowledge'][number]>();
  for (const source of sources) {
    const key = `${source.documentId}@${source.documentVersion}`;
    if (!seen.has(key)) {
      seen.set(key, {
        documentId: source.documentId,
        documentKey: source.documentKey,
        version: source.documentVersion,
      });
    }
  }
  return [...seen.values()];
}

/** The provenance as the API shows it (snake_case, beside `sources` and `trimmed`). */
export function provenanceJson(provenance: AnswerProvenance) {
  const { base, generation, retrieval } = provenance;
  return {
    model_version: provenance.modelVersion,
    base:
      base.kind === 'gguf'
        ? { kind: base.kind, digest: base.digest, file: base.file, bytes: base.bytes }
        : { kind: base.kind, model: base.model, base_url: base.baseUrl },
    adapters: provenance.adapters.map(({ digest, file, bytes, scale }) => ({ digest, file, bytes, scale })),
    template: {
      id: provenance.template.id,
      digest: provenance.template.digest,
      system_prompt: provenance.template.systemPrompt,
    },
    generation: {
      temperature: generation.temperature,
      top_p: generation.topP,
      max_tokens: generation.maxTokens,
      max_tokens_requested: generation.maxTokensRequested,
      seed: generation.seed,
      stop: generation.stop,
      presence_penalty: generation.presencePenalty,
      frequency_penalty: generation.frequencyPenalty,
      logit_bias: generation.logitBias,
      response_format: generation.responseFormat,
      logprobs: generation.logprobs,
      // Answers recorded before tool calling have neither.
      tools: generation.tools ?? [],
      tool_choice: generation.toolChoice ?? 'none',
    },
    retrieval: {
      enabled: retrieval.enabled,
      top_k: retrieval.topK,
      mode: retrieval.mode,
      embedder: retrieval.embedder,
    },
    knowledge: provenance.knowledge.map((document) => ({
      document_id: document.documentId,
      document_key: document.documentKey,
      version: document.version,
    })),
  };
}
