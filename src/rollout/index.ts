export { conversationPoint, servedByChallenger } from './assign.ts';
export {
  createRolloutController,
  ROLLOUT_CHANGED,
  type RolloutChangedPayload,
  type RolloutController,
  type RolloutControllerDeps,
} from './controller.ts';
export { type ArmEvidence, decideStep, type RolloutPolicy, type StepDecision, type StepVerdict } from './decide.ts';
export {
  type DecisionJson,
  type RolloutDetailJson,
  type RolloutJson,
  type RolloutRouteDeps,
  registerRolloutRoutes,
} from './routes.ts';
export {
  createRolloutStore,
  type DecisionKind,
  type RolloutDecision,
  type RolloutRecord,
  type RolloutStatus,
  type RolloutStore,
  type RolloutVerdict,
} from './store.ts';
