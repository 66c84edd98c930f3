/** Splits `registry/name:tag` or `registry/name@sha256:...` (a port's colon is not a tag's). */
function reference(image: string): { repository: string; tag: string; digest: string } {
  const [named = '', digest = ''] = image.split('@');
  const slash = named.lastIndexOf('/');
  const colon = named.lastIndexOf(':');
  return colon > slash
    ? { repository: named.slice(0, colon), tag: named.slice(colon + 1), digest }
    : { repository: named, tag: '', digest };
}

/** Why an image reference would move under a running deployment, or undefined when it is pinned. */
export function unpinnedImageProblem(image: string): string | undefined {
  const { repository, tag, digest } = reference(image);
  if (!repository) return `'${image}' names no image`;
  if (digest)
    return /^sha256:[0-9a-f]{64}$/.test(digest) ? undefined : `'${image}': a digest is sha256:<64 hex digits>`;
  if (!tag) return `'${image}' has no tag: every pull could bring another image`;
  if (tag === 'latest') return `'${image}' is tagged latest: every pull could bring another image`;
  return undefined;
}

/** The configured image, its `latest` (or missing) tag replaced by this Bertha's version. */
export function imageForVersion(configured: string, version: string): string {
  const { repository, tag, digest } = reference(configured);
  if (digest || (tag && tag !== 'latest')) return configured;
  return `${repository}:${version}`;
}
