export {
  type AlertEventPayload,
  type AlertmanagerWebhook,
  alertEvents,
  alertEventType,
  alertmanagerWebhookSchema,
} from './alertmanager.ts';
export type { BerthaEvent, EventBus, EventFilter, EventHandler, PublishInput, PublishResult } from './bus.ts';
export { createObjectChangeFeed, type ObjectChangeFeed } from './object-changes.ts';
export { type ObjectEventPayload, publishObjectEvent } from './object-events.ts';
export {
  createSensors,
  renderTemplate,
  type SensorRule,
  type Sensors,
  type SensorTriggers,
  type TriggerDecision,
} from './sensors.ts';
