import { NotFoundError } from '../core/errors.ts';
import type { MetadataDb } from '../db/index.ts';
import { describeNode, type LineageNode } from './describe.ts';
import { type LineageDirection, type NodeRef, nodeKey } from './kinds.ts';
import { type Link, rowLinks } from './row-links.ts';
import type { LineageStore } from './store.ts';

export interface LineageGraphOptions {
  direction: LineageDirection | 'both';
  /** Edges followed from the root, in each direction. */
  depth: number;
  /** Nodes at most, the root included; the walk stops adding nodes there. */
  maxNodes: number;
}

export interface GraphNode extends LineageNode {
  /** `<kind>:<id>`, what edges refer to. */
  key: string;
  /** Which walk reached it first: upstream (what the root came from) or downstream (what it led to). */
  side: 'root' | LineageDirection;
  /** Edges from the root. */
  distance: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  relation: string;
  /** True for a `lineage_edges` row a step wrote; false for a link an existing row holds. */
  recorded: boolean;
  attributes?: Record<string, unknown>;
}

export interface LineageGraph {
  root: string;
  direction: LineageGraphOptions['direction'];
  depth: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Some neighbours were left out: the node cap was reached, or a node had more links than are followed. */
  truncated: boolean;
}

/** Links followed per node and direction: a model version that served thousands of answers shows the newest. */
const FAN_OUT = 50;

interface GraphDeps {
  db: MetadataDb;
  store: LineageStore;
}

/** Every neighbour of `node` in one direction: links held by rows, then edges steps recorded. */
async function neighbours(
  deps: GraphDeps,
  node: NodeRef,
  direction: LineageDirection,
): Promise<{ links: Array<Link & { recorded: boolean }>; more: boolean }> {
  const held = await rowLinks(deps.db, node, direction, FAN_OUT + 1);
  const recorded = await deps.store.edges(node, direction, { limit: FAN_OUT + 1 });
  const links = [
    ...held.map((link) => ({ ...link, recorded: false })),
    ...recorded.map((edge) => ({
      node: direction === 'downstream' ? edge.to : edge.from,
      relation: edge.relation,
      attributes: edge.attributes,
      recorded: true,
    })),
  ];
  const more = held.length > FAN_OUT || recorded.length > FAN_OUT;
  return { links: links.slice(0, more ? FAN_OUT : links.length), more };
}

/**
 * Breadth-first from `root`, upstream and downstream separately (the ancestors of a
 * descendant are not the root's lineage), each to `depth` edges, until `maxNodes`. A node
 * whose row is gone still appears, marked `missing`, with the edges that name it.
 */
export async function lineageGraph(
  deps: GraphDeps,
  root: NodeRef,
  options: LineageGraphOptions,
): Promise<LineageGraph> {
  const described = await describeNode(deps.db, deps.store, root);
  if (!described) throw new NotFoundError(root.kind, root.id);
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const rootKey = nodeKey(root);
  nodes.set(rootKey, { ...described, key: rootKey, side: 'root', distance: 0 });
  let truncated = false;

  const walk = async (direction: LineageDirection) => {
    let frontier: NodeRef[] = [root];
    for (let distance = 1; distance <= options.depth && frontier.length > 0; distance++) {
      const next: NodeRef[] = [];
      for (const node of frontier) {
        const { links, more } = await neighbours(deps, node, direction);
        truncated ||= more;
        for (const link of links) {
          const key = nodeKey(link.node);
          if (!nodes.has(key)) {
            if (nodes.size >= options.maxNodes) {
              truncated = true;
              continue;
            }
            const found = await describeNode(deps.db, deps.store, link.node);
            nodes.set(key, {
              ...(found ?? {
                ...link.node,
                label: `${link.node.kind} ${link.node.id}`,
                status: 'missing',
                details: {},
              }),
              key,
              side: direction,
              distance,
            });
            next.push(link.node);
          }
          const [from, to] = direction === 'downstream' ? [nodeKey(node), key] : [key, nodeKey(node)];
          const edgeKey = `${from}|${to}|${link.relation}`;
          if (!edges.has(edgeKey)) {
            edges.set(edgeKey, {
              from,
              to,
              relation: link.relation,
              recorded: link.recorded,
              ...(link.attributes && Object.keys(link.attributes).length > 0 ? { attributes: link.attributes } : {}),
            });
          }
        }
      }
      frontier = next;
    }
  };
  if (options.direction !== 'downstream') await walk('upstream');
  if (options.direction !== 'upstream') await walk('downstream');
  return {
    root: rootKey,
    direction: options.direction,
    depth: options.depth,
    nodes: [...nodes.values()],
    edges: [...edges.values()],
    truncated,
  };
}
