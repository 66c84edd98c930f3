export {
  type ArgoRenderOptions,
  JETSTREAM_VERSION,
  type RenderedManifest,
  renderArgoManifests,
  renderEventBus,
  renderEventSources,
  renderSensors,
  renderWorkflowTemplate,
  type StepPodSettings,
} from './compile.ts';
export { argoReferenceProblems } from './references.ts';
export { strictSchemaProblems } from './schema-check.ts';
