import { useCallback, useState } from 'react';
import { EventsPanel } from './EventsPanel.tsx';
import { FeedbackPanel } from './FeedbackPanel.tsx';
import { KnowledgePanel } from './KnowledgePanel.tsx';
import { type LiveEvent, type LiveState, useLiveEvents } from './live.ts';
import { ModelsPanel } from './ModelsPanel.tsx';
import { PipelinesPanel } from './PipelinesPanel.tsx';
import { RolloutPanel } from './RolloutPanel.tsx';

type PanelName = 'feedback' | 'pipelines' | 'models' | 'knowledge' | 'rollouts';

/** Which panels an event concerns, by its type's prefix; they reload when one arrives. */
function panelsFor(type: string): PanelName[] {
  if (type.startsWith('feedback.') || type.startsWith('answer.')) return ['feedback'];
  if (type.startsWith('pipeline.') || type.startsWith('run.') || type.startsWith('step.')) return ['pipelines'];
  if (type.startsWith('rollout.')) return ['rollouts'];
  if (type.startsWith('model.degraded') || type.startsWith('model.recovered')) return ['feedback', 'pipelines'];
  if (type.startsWith('model.') || type.startsWith('registry.') || type.startsWith('eval.')) return ['models'];
  if (type.startsWith('object.') || type.startsWith('document.') || type.startsWith('knowledge.')) {
    return ['knowledge', 'pipelines'];
  }
  return [];
}

/** Live events the dashboard keeps in memory (the events panel shows the newest of them). */
const RECENT_KEPT = 100;

const LIVE_LABEL: Record<LiveState, string> = {
  connecting: 'connecting…',
  live: 'live',
  offline: 'reconnecting…',
  'needs-key': 'needs an API key',
};

export function Dashboard({ keyVersion }: { keyVersion: number }) {
  // A list, not the latest event: events read from one chunk of the stream are handled in one
  // task, React renders once after all of them, and a "latest" state showed only the last.
  const [recent, setRecent] = useState<LiveEvent[]>([]);
  const [refresh, setRefresh] = useState<Record<PanelName, number>>({
    feedback: 0,
    pipelines: 0,
    models: 0,
    knowledge: 0,
    rollouts: 0,
  });
  const onEvent = useCallback((event: LiveEvent) => {
    setRecent((current) => [event, ...current.filter((item) => item.id !== event.id)].slice(0, RECENT_KEPT));
    const panels = panelsFor(event.type);
    if (panels.length > 0) {
      setRefresh((current) => {
        const next = { ...current };
        for (const panel of panels) next[panel]++;
        return next;
      });
    }
  }, []);
  const live = useLiveEvents(onEvent, keyVersion);

  return (
    <div className="dashboard" key={keyVersion}>
      <p className="live-state" data-live={live} aria-live="polite">
        <span className={`dot ${live}`} aria-hidden="true" /> Updates: {LIVE_LABEL[live]}
      </p>
      <div className="panels">
        <EventsPanel live={recent} />
        <KnowledgePanel refreshKey={refresh.knowledge} />
        <FeedbackPanel refreshKey={refresh.feedback} />
        <PipelinesPanel refreshKey={refresh.pipelines} />
        <RolloutPanel refreshKey={refresh.rollouts} />
        <ModelsPanel refreshKey={refresh.models} />
      </div>
    </div>
  );
}
