import type { GraphEdge, GraphNode, LineageGraph } from './graph.ts';
import type { LineageDirection } from './kinds.ts';

function describe(node: GraphNode): string {
  return `${node.kind} ${node.id}  ${node.label}${node.status ? `  [${node.status}]` : ''}`;
}

/**
 * The graph as two trees under the root, one per direction, for a terminal (`bertha lineage`).
 * Each node is expanded once, under the first node that reaches it in fewest edges; another
 * edge to it shows the node again, marked, without its subtree.
 */
export function renderLineageTree(graph: LineageGraph): string {
  const nodes = new Map(graph.nodes.map((node) => [node.key, node]));
  const root = nodes.get(graph.root);
  if (!root) return '';
  const lines = [describe(root)];
  const expanded = new Set<string>([graph.root]);

  const children = (key: string, side: LineageDirection): Array<{ edge: GraphEdge; node: GraphNode }> =>
    graph.edges.flatMap((edge) => {
      const childKey =
        side === 'downstream' ? (edge.from === key ? edge.to : undefined) : edge.to === key ? edge.from : undefined;
      const node = childKey === undefined ? undefined : nodes.get(childKey);
      return node && node.side === side ? [{ edge, node }] : [];
    });

  const print = (parent: GraphNode, side: LineageDirection, indent: string) => {
    const arrow = side === 'downstream' ? '→' : '←';
    const list = children(parent.key, side);
    list.forEach(({ edge, node }, index) => {
      const last = index === list.length - 1;
      const expand = !expanded.has(node.key) && node.distance === parent.distance + 1;
      lines.push(
        `${indent}${last ? '└─' : '├─'} ${edge.relation} ${arrow} ${describe(node)}${expand ? '' : '  (shown elsewhere)'}`,
      );
      if (!expand) return;
      expanded.add(node.key);
      print(node, side, `${indent}${last ? '   ' : '│  '}`);
    });
  };

  for (const [side, title] of [
    ['upstream', 'upstream: where it came from'],
    ['downstream', 'downstream: what it led to'],
  ] as const) {
    if (graph.direction !== 'both' && graph.direction !== side) continue;
    lines.push(title);
    if (children(graph.root, side).length === 0) lines.push('   (nothing recorded)');
    else print(root, side, '');
  }
  if (graph.truncated)
    lines.push('(more links than shown: raise --depth or --max-nodes, or start from a node further along)');
  return lines.join('\n');
}
