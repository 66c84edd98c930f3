import { useEffect, useRef, useState } from 'react';
import { ThumbDown, ThumbUp } from '../Icons.tsx';
import { describeFailure, sendJson } from '../lib/api.ts';
import type { ChatMessage, FeedbackState } from './types.ts';

interface Props {
  message: ChatMessage;
  onSaved: (feedback: FeedbackState) => void;
}

/** Thumbs up/down on an answer, with an optional comment and corrected answer. */
export function FeedbackBar({ message, onSaved }: Props) {
  const [rating, setRating] = useState<'up' | 'down' | null>(null);
  const [comment, setComment] = useState('');
  const [correction, setCorrection] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const saved = message.feedback?.sentAt ? message.feedback : undefined;
  const commentBox = useRef<HTMLTextAreaElement>(null);
  const formOpen = rating !== null;

  // Choosing a thumb opens the form; the comment box takes focus so Enter/Escape work at once.
  useEffect(() => {
    if (formOpen) commentBox.current?.focus();
  }, [formOpen]);

  if (!message.answerId) return null;
  if (saved) {
    return (
      <div className="feedback-done" role="status">
        {saved.rating === 'up' ? <ThumbUp label="Rated good" /> : <ThumbDown label="Rated bad" />} Thanks, your feedback
        was recorded.
      </div>
    );
  }

  async function submit() {
    if (!rating || !message.answerId) return;
    setBusy(true);
    setError(null);
    try {
      await sendJson('POST', '/v1/feedback', {
        response_id: message.answerId,
        rating,
        ...(comment.trim() ? { comment: comment.trim() } : {}),
        ...(correction.trim() ? { correction: correction.trim() } : {}),
      });
      onSaved({
        rating,
        ...(comment.trim() ? { comment: comment.trim() } : {}),
        ...(correction.trim() ? { correction: correction.trim() } : {}),
        sentAt: new Date().toISOString(),
      });
    } catch (failure) {
      setError(describeFailure(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: Escape closes the form from any of its controls.
    <div
      className="feedback"
      onKeyDown={(event) => {
        if (event.key === 'Escape') setRating(null);
      }}
    >
      <div className="feedback-buttons">
        <button
          type="button"
          className={`thumb${rating === 'up' ? ' selected' : ''}`}
          aria-pressed={rating === 'up'}
          aria-label="Good answer"
          title="Good answer"
          onClick={() => setRating('up')}
        >
          <ThumbUp />
        </button>
        <button
          type="button"
          className={`thumb${rating === 'down' ? ' selected' : ''}`}
          aria-pressed={rating === 'down'}
          aria-label="Bad answer"
          title="Bad answer"
          onClick={() => setRating('down')}
        >
          <ThumbDown />
        </button>
      </div>
      {rating && (
        <form
          className="feedback-form"
          onSubmit={(event) => {
            event.preventDefault();
            void submit();
          }}
        >
          <label>
            Comment (optional)
            <textarea value={comment} rows={2} ref={commentBox} onChange={(event) => setComment(event.target.value)} />
          </label>
          {rating === 'down' && (
            <label>
              Corrected answer (optional)
              <textarea value={correction} rows={3} onChange={(event) => setCorrection(event.target.value)} />
            </label>
          )}
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>
              Send feedback
            </button>
            <button type="button" onClick={() => setRating(null)}>
              Cancel
            </button>
          </div>
          {error && (
            <p className="error" role="alert">
              {error}
            </p>
          )}
        </form>
      )}
    </div>
  );
}
