import type { ReactNode } from 'react';

interface Props {
  id: string;
  title: string;
  error?: string | null;
  loading?: boolean;
  actions?: ReactNode;
  children?: ReactNode;
  wide?: boolean;
}

/** A dashboard card; an error replaces the body (e.g. "Not available in this build."). */
export function Panel({ id, title, error, loading, actions, children, wide }: Props) {
  return (
    <section className={`panel${wide ? ' wide' : ''}`} aria-labelledby={`${id}-title`} id={id}>
      <header className="panel-head">
        <h2 id={`${id}-title`}>{title}</h2>
        {loading && <span className="muted small">loading…</span>}
        {actions}
      </header>
      {error ? (
        <p className={`panel-error${error.startsWith('Not available') ? ' muted' : ' error'}`} role="status">
          {error}
        </p>
      ) : (
        children
      )}
    </section>
  );
}

export function formatTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
