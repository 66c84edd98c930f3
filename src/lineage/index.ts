export type { LineageNode } from './describe.ts';
export { type GraphEdge, type GraphNode, type LineageGraph, lineageGraph } from './graph.ts';
export {
  documentNodeId,
  isLineageKind,
  LINEAGE_KINDS,
  type LineageDirection,
  type LineageKind,
  type NodeRef,
  nodeKey,
  parseNodeRef,
  UnknownLineageKindError,
} from './kinds.ts';
export {
  lineageDatasets,
  OPENLINEAGE_PRODUCER,
  OPENLINEAGE_SCHEMA_URL,
  type OpenLineageRunEvent,
  openLineageNamespace,
  toOpenLineage,
} from './openlineage.ts';
export { type LineageRouteDeps, registerLineageRoutes } from './routes.ts';
export {
  createRunEventStore,
  pipelineRunUuid,
  type RunEventStore,
  type RunEventType,
  type StepRunEvent,
  stepRunUuid,
} from './run-events.ts';
export { createLineageStore, type LineageEdge, type LineageRecorder, type LineageStore } from './store.ts';
export { renderLineageTree } from './tree.ts';
