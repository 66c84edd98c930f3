import { useMemo } from 'react';
import { getJson } from '../lib/api.ts';
import type { LiveEvent } from './live.ts';
import { formatTime, Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

const SHOWN = 50;
/** Alert events: a monitored model version is degraded (Alertmanager or the embedded watcher). */
const ALERT_TYPES = new Set(['model.degraded']);
const RESOLVED_TYPES = new Set(['model.recovered', 'model.resolved']);

function summary(event: LiveEvent): string {
  const payload = event.payload;
  if (!payload || typeof payload !== 'object') return '';
  return Object.entries(payload as Record<string, unknown>)
    .filter(([, value]) => value !== null && typeof value !== 'object')
    .slice(0, 4)
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(' ');
}

/** An alert is current until a later resolution event about the same subject. */
function currentAlerts(events: LiveEvent[]): LiveEvent[] {
  const resolved = new Set<string>();
  const alerts: LiveEvent[] = [];
  for (const event of events) {
    const subject = event.subject ?? '';
    if (RESOLVED_TYPES.has(event.type)) resolved.add(subject);
    else if (ALERT_TYPES.has(event.type) && !resolved.has(subject)) {
      resolved.add(subject);
      alerts.push(event);
    }
  }
  return alerts;
}

/** Stored events (loaded once) and the live ones since, newest first, each once. */
export function EventsPanel({ live }: { live: LiveEvent[] }) {
  const { data, error, loading } = usePanelData(
    async (signal) => (await getJson<{ data: LiveEvent[] }>(`/v1/events?limit=${SHOWN}`, signal)).data,
    0,
  );
  const events = useMemo(() => mergeNewestFirst(data ?? [], live), [data, live]);
  const alerts = currentAlerts(events);

  return (
    <Panel id="events" title="Alerts and events" error={error} loading={loading}>
      <section className="alerts" aria-label="Current alerts">
        {alerts.length === 0 ? (
          <p className="ok-banner">No current alerts.</p>
        ) : (
          alerts.map((alert) => (
            <p key={alert.id} className="alert-banner" role="alert">
              ⚠ {alert.type} <strong>{alert.subject}</strong> {summary(alert)}{' '}
              <span className="muted">{formatTime(alert.createdAt)}</span>
            </p>
          ))
        )}
      </section>
      <ul className="event-list">
        {events.length === 0 && <li className="muted">No events yet.</li>}
        {events.slice(0, SHOWN).map((event) => (
          <li key={event.id} className="event" data-type={event.type}>
            <span className="event-time muted">{formatTime(event.createdAt)}</span>
            <span className="event-type">{event.type}</span>
            <span className="event-subject">{event.subject}</span>
            <span className="event-summary muted">{summary(event)}</span>
          </li>
        ))}
      </ul>
    </Panel>
  );
}

function mergeNewestFirst(current: LiveEvent[], incoming: LiveEvent[]): LiveEvent[] {
  const byId = new Map(current.map((event) => [event.id, event]));
  for (const event of incoming) byId.set(event.id, event);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, SHOWN * 2);
}
