import type { Config } from '../config/index.ts';
import type { ModelBundle } from './bundle.ts';

// The bundles Bertha serves without a registry version. Both retrieve the configured
// `serving.retrievalTopK` passages, as the bundles retraining registers do.

/** The bundle `bertha up` serves before any registry alias says otherwise: a GGUF file, or an upstream model. */
export function configuredBundle(config: Config): ModelBundle | undefined {
  const serving = config.serving;
  const base: ModelBundle['base'] | undefined = serving.model
    ? { kind: 'gguf', path: serving.model }
    : serving.upstream.baseUrl && serving.upstream.model
      ? { kind: 'upstream', model: serving.upstream.model }
      : undefined;
  if (!base) return undefined;
  return {
    version: serving.modelVersion,
    base,
    adapters: serving.adapters,
    systemPrompt: serving.systemPrompt,
    ...(serving.chatTemplate ? { chatTemplate: serving.chatTemplate } : {}),
    generation: {},
    retrieval: { enabled: true, topK: serving.retrievalTopK },
  };
}

/** The small demonstration model `bertha up` trains when nothing else is configured, and retraining's last resort. */
export function starterBundle(
  modelPath: string,
  options: { retrievalTopK: number; systemPrompt?: string | undefined },
): ModelBundle {
  return {
    version: 'starter',
    base: { kind: 'gguf', path: modelPath },
    adapters: [],
    ...(options.systemPrompt !== undefined ? { systemPrompt: options.systemPrompt } : {}),
    generation: {},
    retrieval: { enabled: true, topK: options.retrievalTopK },
  };
}
