import { Cron } from 'croner';
import type { Logger } from '../core/logger.ts';
import type { PipelineCatalog } from './catalog.ts';
import { resolveRunParams } from './definition.ts';
import type { TriggerStore } from './triggers.ts';

export interface PipelineSchedule {
  name: string;
  pipeline: string;
  /** Cron expression (croner syntax, seconds optional). */
  cron: string;
  params: Record<string, string | number | boolean>;
  timezone?: string | undefined;
}

/**
 * Each firing of a schedule records a pending trigger with id `trg_schedule_<name>_<firing
 * ms>`: every process with the schedule writes the same row, the primary key keeps one.
 * Checks every schedule's pipeline and parameters first; returns the function that stops them.
 */
export function startSchedules(options: {
  schedules: PipelineSchedule[];
  catalog: PipelineCatalog;
  triggers: TriggerStore;
  logger: Logger;
  /** Called after this process recorded a firing, so its runner claims it at once. */
  onPending: () => void;
}): () => void {
  for (const entry of options.schedules) resolveRunParams(options.catalog.get(entry.pipeline), entry.params);
  const crons = options.schedules.map(
    (entry) =>
      new Cron(
        entry.cron,
        { protect: true, ...(entry.timezone ? { timezone: entry.timezone } : {}) },
        async (self: Cron) => {
          const firedAt = (self.currentRun() ?? new Date()).getTime();
          try {
            const recorded = await options.triggers.record({
              id: `trg_schedule_${entry.name}_${firedAt}`,
              sensor: `schedule:${entry.name}`,
              eventId: null,
              pipeline: entry.pipeline,
              params: entry.params,
              concurrencyKey: `schedule:${entry.name}`,
              status: 'pending',
              reason: null,
            });
            if (recorded) options.onPending();
          } catch (error) {
            options.logger.error({ err: error, schedule: entry.name }, 'scheduled trigger failed');
          }
        },
      ),
  );
  return () => {
    for (const cron of crons) cron.stop();
  };
}
