/** Shapes of `GET /v1/lineage/{kind}/{id}` (src/lineage/graph.ts). */
export interface GraphNode {
  key: string;
  kind: string;
  id: string;
  label: string;
  status?: string;
  at?: string;
  side: 'root' | 'upstream' | 'downstream';
  distance: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  relation: string;
  recorded: boolean;
  attributes?: Record<string, unknown>;
}

export interface LineageGraph {
  root: string;
  depth: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  truncated: boolean;
}

export interface TreeItem {
  node: GraphNode;
  edge: GraphEdge;
  /** The node is expanded elsewhere in the tree; here it is only named. */
  repeated: boolean;
  children: TreeItem[];
}

/**
 * One direction of the graph as a tree under the root (as `bertha lineage` prints it): each
 * node expanded once, under the first node that reaches it in fewest edges.
 */
export function lineageTree(graph: LineageGraph, side: 'upstream' | 'downstream'): TreeItem[] {
  const nodes = new Map(graph.nodes.map((node) => [node.key, node]));
  const expanded = new Set([graph.root]);
  const build = (parent: GraphNode): TreeItem[] =>
    graph.edges.flatMap((edge) => {
      const [near, far] = side === 'downstream' ? [edge.from, edge.to] : [edge.to, edge.from];
      const node = near === parent.key ? nodes.get(far) : undefined;
      if (!node || node.side !== side) return [];
      const expand = !expanded.has(node.key) && node.distance === parent.distance + 1;
      if (expand) expanded.add(node.key);
      return [{ node, edge, repeated: !expand, children: expand ? build(node) : [] }];
    });
  const root = nodes.get(graph.root);
  return root ? build(root) : [];
}
