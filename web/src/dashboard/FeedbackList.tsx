import { useState } from 'react';
import { ThumbDown, ThumbUp } from '../Icons.tsx';
import { lineageHref } from '../lineage/route.ts';
import { listOf, text } from './fields.ts';
import { formatTime } from './Panel.tsx';

/** One user's vote on one answer, as `GET /v1/feedback` lists it. */
export interface FeedbackEntry {
  id: string;
  answerId: string;
  user: string;
  modelVersion: string;
  rating: 'up' | 'down';
  comment: string | null;
  correction: string | null;
  createdAt: string;
  updatedAt: string;
}

const SHOWN = 25;

export function toEntries(body: unknown): FeedbackEntry[] {
  return listOf(body).flatMap((item) => {
    const rating = text(item, 'rating');
    const id = text(item, 'id');
    if ((rating !== 'up' && rating !== 'down') || !id) return [];
    const createdAt = text(item, 'createdAt') ?? '';
    return [
      {
        id,
        answerId: text(item, 'responseId') ?? '',
        user: text(item, 'user') ?? '',
        modelVersion: text(item, 'modelVersion') ?? 'unknown',
        rating,
        comment: text(item, 'comment') ?? null,
        correction: text(item, 'correction') ?? null,
        createdAt,
        updatedAt: text(item, 'updatedAt') ?? createdAt,
      },
    ];
  });
}

/** The latest votes with what users wrote: comments and corrected answers, newest change first. */
export function FeedbackList({ entries }: { entries: FeedbackEntry[] }) {
  const [onlyWritten, setOnlyWritten] = useState(false);
  const shown = entries
    .filter((entry) => !onlyWritten || entry.comment || entry.correction)
    .sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0))
    .slice(0, SHOWN);
  return (
    <section className="feedback-list" aria-labelledby="feedback-list-title">
      <header className="feedback-list-head">
        <h3 id="feedback-list-title">Latest feedback</h3>
        <label className="small">
          <input type="checkbox" checked={onlyWritten} onChange={(event) => setOnlyWritten(event.target.checked)} />
          Only with a comment or correction
        </label>
      </header>
      {shown.length === 0 ? (
        <p className="muted">{onlyWritten ? 'No comments or corrections yet.' : 'No feedback yet.'}</p>
      ) : (
        <ul>
          {shown.map((entry) => (
            <li key={entry.id} className="feedback-entry" data-feedback-id={entry.id} data-rating={entry.rating}>
              <div className="feedback-entry-head">
                <span className={entry.rating === 'up' ? 'good' : 'bad'}>
                  {entry.rating === 'up' ? <ThumbUp label="up" /> : <ThumbDown label="down" />}
                </span>
                <span className="muted small">{formatTime(entry.updatedAt)}</span>
                <span className="small">{entry.modelVersion}</span>
                <a href={lineageHref('answer', entry.answerId)} title="Lineage of the answer">
                  <code className="small">{entry.answerId}</code>
                </a>
                <span className="muted small">{entry.user}</span>
                <a href={lineageHref('feedback', entry.id)} className="small lineage-link">
                  lineage
                </a>
              </div>
              {entry.comment && <p className="feedback-comment">{entry.comment}</p>}
              {entry.correction && (
                <p className="feedback-correction">
                  <span className="muted small">Correction: </span>
                  {entry.correction}
                </p>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
