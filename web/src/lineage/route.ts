/** A node of the lineage graph, as `GET /v1/lineage/{kind}/{id}` names it (src/lineage/kinds.ts). */
export interface LineageRef {
  kind: string;
  id: string;
}

const PREFIX = '#/lineage/';

/** The dashboard address of a node's lineage view; ids may hold slashes (`bertha-chat/3`). */
export function lineageHref(kind: string, id: string): string {
  return `${PREFIX}${encodeURIComponent(kind)}/${id.split('/').map(encodeURIComponent).join('/')}`;
}

/** The API path of a node's graph. */
export function lineageApiPath(ref: LineageRef): string {
  return `/v1/lineage/${lineageHref(ref.kind, ref.id).slice(PREFIX.length)}`;
}

export function isLineageHash(hash: string): boolean {
  return hash.startsWith(PREFIX);
}

export function lineageRefFromHash(hash: string): LineageRef | undefined {
  if (!isLineageHash(hash)) return undefined;
  const [kind, ...id] = hash.slice(PREFIX.length).split('/').map(decodeURIComponent);
  return kind && id.length > 0 && id.join('/') !== '' ? { kind, id: id.join('/') } : undefined;
}
