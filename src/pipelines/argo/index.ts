export {
  type ArgoRenderOptions,
  type RenderedManifest,
  renderArgoManifests,
  renderEventBus,
  renderEventSources,
  renderSensors,
  renderWorkflowTemplate,
} from './compile.ts';
export { argoReferenceProblems } from './references.ts';
export { strictSchemaProblems } from './schema-check.ts';
