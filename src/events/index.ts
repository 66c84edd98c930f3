export {
  type AlertEventPayload,
  type AlertmanagerWebhook,
  alertEvents,
  alertEventType,
  alertmanagerWebhookSchema,
} from './alertmanager.ts';
export type { BerthaEvent, EventBus, EventFilter, EventHandler, PublishInput, PublishResult } from './bus.ts';
export { createSensors, renderTemplate, type SensorRule, type Sensors, type TriggerDecision } from './sensors.ts';
