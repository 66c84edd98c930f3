import type { ModelBundle } from './bundle.ts';
import type { FileDigest, FileDigests } from './file-digest.ts';

/** What a bundle's weights are, by content: the base GGUF (or the upstream model's id) and each adapter. */
export interface BundleFiles {
  base: ({ kind: 'gguf' } & FileDigest) | { kind: 'upstream'; model: string };
  adapters: Array<FileDigest & { scale: number }>;
}

/** Digests every file a bundle loads, in parallel; an upstream model has no file of its own here. */
export async function digestBundleFiles(
  bundle: ModelBundle,
  digests: FileDigests,
  signal?: AbortSignal,
): Promise<BundleFiles> {
  const { base: source } = bundle;
  const [base, adapters] = await Promise.all([
    source.kind === 'gguf'
      ? digests.digest(source.path, signal).then((file) => ({ kind: 'gguf' as const, ...file }))
      : { kind: 'upstream' as const, model: source.model },
    Promise.all(
      bundle.adapters.map(async (adapter) => ({
        ...(await digests.digest(adapter.path, signal)),
        scale: adapter.scale,
      })),
    ),
  ]);
  return { base, adapters };
}
