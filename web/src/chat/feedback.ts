import { sendJson } from '../lib/api.ts';
import type { FeedbackState } from './types.ts';

export type Rating = 'up' | 'down';

/** What the user chose: the vote and what they wrote about it. */
export interface FeedbackWanted {
  rating: Rating;
  comment?: string;
  correction?: string;
}

/** What the server has stored, as far as this page knows (fields unknown after a reload are absent). */
export interface FeedbackSaved {
  id: string;
  rating?: Rating;
  comment?: string | null;
  correction?: string | null;
}

interface FeedbackJson {
  id: string;
  rating: Rating;
  comment: string | null;
  correction: string | null;
}

function fromJson(body: FeedbackJson): FeedbackSaved {
  return { id: body.id, rating: body.rating, comment: body.comment, correction: body.correction };
}

/**
 * Brings the server's copy of this answer's feedback to `wanted`: the first save is the vote
 * (`POST /v1/feedback`, which answers with the feedback id); every later change (a comment, a
 * correction, the other thumb) updates that same row (`PATCH /v1/feedback/:id`), so it is
 * never a second vote. Nothing is sent when nothing changed.
 */
export async function syncFeedback(
  answerId: string,
  wanted: FeedbackWanted,
  saved: FeedbackSaved | undefined,
): Promise<FeedbackSaved> {
  if (!saved) {
    const created = await sendJson<FeedbackJson>('POST', '/v1/feedback', {
      response_id: answerId,
      rating: wanted.rating,
      ...(wanted.comment ? { comment: wanted.comment } : {}),
      ...(wanted.correction ? { correction: wanted.correction } : {}),
    });
    return fromJson(created);
  }
  const changes: { rating?: Rating; comment?: string | null; correction?: string | null } = {};
  if (saved.rating !== wanted.rating) changes.rating = wanted.rating;
  if (saved.comment !== (wanted.comment ?? null)) changes.comment = wanted.comment ?? null;
  if (saved.correction !== (wanted.correction ?? null)) changes.correction = wanted.correction ?? null;
  if (Object.keys(changes).length === 0) return saved;
  return fromJson(await sendJson<FeedbackJson>('PATCH', `/v1/feedback/${encodeURIComponent(saved.id)}`, changes));
}

/** Whether the server's copy is what the user chose. */
export function isSaved(wanted: FeedbackWanted, saved: FeedbackSaved | undefined): boolean {
  return (
    saved !== undefined &&
    saved.rating === wanted.rating &&
    saved.comment === (wanted.comment ?? null) &&
    saved.correction === (wanted.correction ?? null)
  );
}

/** The message's stored feedback as this page's starting point. */
export function savedFrom(state: FeedbackState | undefined): FeedbackSaved | undefined {
  if (!state?.id) return undefined;
  // Only `sentAt` says the fields were stored; without it, everything is sent again.
  if (!state.sentAt) return { id: state.id };
  return {
    id: state.id,
    rating: state.rating,
    comment: state.comment ?? null,
    correction: state.correction ?? null,
  };
}
