import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { PublishInput } from './bus.ts';

/**
 * Alertmanager's webhook body, version 4
 * (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
 * Unknown fields are ignored so newer Alertmanagers still parse.
 */
const labelSet = z.record(z.string(), z.string());

export const alertmanagerWebhookSchema = z.object({
  version: z.literal('4'),
  groupKey: z.string().min(1),
  truncatedAlerts: z.number().int().min(0).optional(),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string(),
  groupLabels: labelSet,
  commonLabels: labelSet,
  commonAnnotations: labelSet,
  externalURL: z.string(),
  alerts: z.array(
    z.object({
      status: z.enum(['firing', 'resolved']),
      labels: labelSet,
      annotations: labelSet,
      startsAt: z.string(),
      endsAt: z.string(),
      generatorURL: z.string(),
      fingerprint: z.string().min(1),
    }),
  ),
});

export type AlertmanagerWebhook = z.infer<typeof alertmanagerWebhookSchema>;

export interface AlertEventPayload {
  model_version?: string;
  alertname: string | null;
  status: 'firing' | 'resolved';
  fingerprint: string;
  group_key: string;
  receiver: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  starts_at: string;
  ends_at: string;
  generator_url: string;
}

/** Event types an alert becomes: about a model version when it carries a `model_version` label. */
export function alertEventType(status: 'firing' | 'resolved', modelVersion: string | undefined): string {
  if (modelVersion) return status === 'firing' ? 'model.degraded' : 'model.recovered';
  return status === 'firing' ? 'alert.firing' : 'alert.resolved';
}

/**
 * One event per alert in the notification. Alertmanager re-sends a group's alerts on every
 * group change and repeat interval; the dedupe key (group key, fingerprint, status and the
 * episode's `startsAt`) makes those redeliveries no-ops, while a new firing after a
 * resolution (a new `startsAt`) is a new event.
 */
export function alertEvents(webhook: AlertmanagerWebhook): PublishInput<AlertEventPayload>[] {
  return webhook.alerts.map((alert) => {
    const modelVersion = alert.labels.model_version || undefined;
    const alertname = alert.labels.alertname ?? null;
    const dedupe = createHash('sha256')
      .update(JSON.stringify([webhook.groupKey, alert.fingerprint, alert.status, alert.startsAt]))
      .digest('hex');
    return {
      type: alertEventType(alert.status, modelVersion),
      source: 'alertmanager',
      subject: modelVersion ?? alertname,
      dedupeKey: `alertmanager:${dedupe}`,
      payload: {
        ...(modelVersion ? { model_version: modelVersion } : {}),
        alertname,
        status: alert.status,
        fingerprint: alert.fingerprint,
        group_key: webhook.groupKey,
        receiver: webhook.receiver,
        labels: alert.labels,
        annotations: alert.annotations,
        starts_at: alert.startsAt,
        ends_at: alert.endsAt,
        generator_url: alert.generatorURL,
      },
    };
  });
}
