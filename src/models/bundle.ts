import { z } from 'zod';

/**
 * The deployable unit: what the chat service needs to answer with one model version.
 * A registered model version points to one bundle; aliases (`champion`, `challenger`)
 * choose which bundle is served. Paths may be local files or object-store keys.
 */
export const modelBundleSchema = z
  .object({
    /** Registry version this bundle belongs to, e.g. `bertha-chat/3`; `local` for an unregistered model. */
    version: z.string().min(1),
    base: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('gguf'), path: z.string().min(1) }).strict(),
      z.object({ kind: z.literal('upstream'), model: z.string().min(1) }).strict(),
    ]),
    /** LoRA adapters applied on top of a GGUF base, with their scale. */
    adapters: z.array(z.object({ path: z.string().min(1), scale: z.number().default(1) }).strict()).default([]),
    /** System prompt; `{context}` in it is replaced by the retrieved passages when retrieval is on. */
    systemPrompt: z.string().optional(),
    /** Jinja chat template to use when the model has none of its own. */
    chatTemplate: z.string().optional(),
    generation: z
      .object({
        temperature: z.number().min(0).max(2).optional(),
        topP: z.number().gt(0).max(1).optional(),
        maxTokens: z.number().int().positive().optional(),
      })
      .strict()
      .default({}),
    retrieval: z
      .object({ enabled: z.boolean().default(true), topK: z.number().int().min(1).max(50).default(4) })
      .strict()
      .default({ enabled: true, topK: 4 }),
    /** Evaluation results the promotion gate decided on: metric name -> value (e.g. `gold_accuracy`). */
    eval: z.record(z.string(), z.number()).optional(),
    /** Where this bundle came from, so a bad answer can be traced back to data and training. */
    lineage: z
      .object({
        /** Tracking run that produced it. */
        runId: z.string().optional(),
        /** Object key or digest of the training data snapshot. */
        trainingDataSnapshot: z.string().optional(),
        /** The feedback collected between these ISO times went into the training data. */
        feedbackWindow: z.object({ from: z.string(), to: z.string() }).strict().optional(),
        /** Registry version this one was fine-tuned from, e.g. `bertha-chat/2`. */
        parentVersion: z.string().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type ModelBundle = z.infer<typeof modelBundleSchema>;
