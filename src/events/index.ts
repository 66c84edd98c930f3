export type { BerthaEvent, EventBus, EventFilter, EventHandler, PublishInput, PublishResult } from './bus.ts';
