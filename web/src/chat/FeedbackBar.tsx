import { useEffect, useRef, useState } from 'react';
import { ThumbDown, ThumbUp } from '../Icons.tsx';
import { describeFailure } from '../lib/api.ts';
import { type FeedbackSaved, type FeedbackWanted, isSaved, type Rating, savedFrom, syncFeedback } from './feedback.ts';
import type { ChatMessage, FeedbackState } from './types.ts';

interface Props {
  message: ChatMessage;
  /** Keeps the feedback with the chat history (also before it is saved, so a reload can retry). */
  onChange: (feedback: FeedbackState) => void;
}

type SaveStatus = 'idle' | 'saving' | 'saved' | 'failed';

function wantedFrom(state: FeedbackState | undefined): FeedbackWanted | undefined {
  if (!state) return undefined;
  return {
    rating: state.rating,
    ...(state.comment ? { comment: state.comment } : {}),
    ...(state.correction ? { correction: state.correction } : {}),
  };
}

/**
 * Thumbs up/down on an answer. The click is the vote: it is saved at once, and the bar says
 * whether it was (saving / saved / failed, with a retry). The optional comment and corrected
 * answer that follow update the same vote.
 */
export function FeedbackBar({ message, onChange }: Props) {
  const [wanted, setWanted] = useState<FeedbackWanted | undefined>(() => wantedFrom(message.feedback));
  const [status, setStatus] = useState<SaveStatus>(() =>
    message.feedback ? (message.feedback.sentAt ? 'saved' : 'failed') : 'idle',
  );
  const [error, setError] = useState<string | null>(null);
  const [formOpen, setFormOpen] = useState(false);
  const [comment, setComment] = useState(message.feedback?.comment ?? '');
  const [correction, setCorrection] = useState(message.feedback?.correction ?? '');
  const commentBox = useRef<HTMLTextAreaElement>(null);
  // Saves run one after another, each sending what differs between the latest choice and
  // what the server last confirmed, so quick clicks never race or vote twice.
  const wantedNow = useRef(wanted);
  const savedNow = useRef<FeedbackSaved | undefined>(savedFrom(message.feedback));
  const queue = useRef<Promise<void>>(Promise.resolve());
  const lastSave = useRef(0);
  const onChangeNow = useRef(onChange);
  onChangeNow.current = onChange;

  // Choosing a thumb opens the form; the comment box takes focus so Enter/Escape work at once.
  useEffect(() => {
    if (formOpen) commentBox.current?.focus();
  }, [formOpen]);

  const answerId = message.answerId;
  if (!answerId) return null;

  function persist(next: FeedbackWanted, saved: FeedbackSaved | undefined, sentAt: string | undefined) {
    onChangeNow.current({
      ...next,
      ...(saved ? { id: saved.id } : {}),
      ...(sentAt ? { sentAt } : {}),
    });
  }

  function save(next: FeedbackWanted) {
    wantedNow.current = next;
    setWanted(next);
    persist(next, savedNow.current, undefined);
    setStatus('saving');
    setError(null);
    const id = ++lastSave.current;
    queue.current = queue.current.then(async () => {
      const want = wantedNow.current;
      if (!want || !answerId) return;
      try {
        savedNow.current = await syncFeedback(answerId, want, savedNow.current);
        const done = isSaved(want, savedNow.current) && want === wantedNow.current;
        persist(want, savedNow.current, done ? new Date().toISOString() : undefined);
        if (id === lastSave.current) setStatus('saved');
      } catch (failure) {
        if (id === lastSave.current) {
          setStatus('failed');
          setError(describeFailure(failure));
        }
      }
    });
  }

  function vote(rating: Rating) {
    setFormOpen(true);
    save({ ...wanted, rating });
  }

  function sendNote() {
    if (!wanted) return;
    const note = comment.trim();
    const fix = wanted.rating === 'down' ? correction.trim() : (wanted.correction ?? '');
    save({ rating: wanted.rating, ...(note ? { comment: note } : {}), ...(fix ? { correction: fix } : {}) });
    setFormOpen(false);
  }

  const hasNote = Boolean(wanted?.comment || wanted?.correction);
  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: Escape closes the form from any of its controls.
    <div
      className="feedback"
      onKeyDown={(event) => {
        if (event.key === 'Escape') setFormOpen(false);
      }}
    >
      <div className="feedback-buttons">
        <button
          type="button"
          className={`thumb${wanted?.rating === 'up' ? ' selected' : ''}`}
          aria-pressed={wanted?.rating === 'up'}
          aria-label="Good answer"
          title="Good answer"
          onClick={() => vote('up')}
        >
          <ThumbUp />
        </button>
        <button
          type="button"
          className={`thumb${wanted?.rating === 'down' ? ' selected' : ''}`}
          aria-pressed={wanted?.rating === 'down'}
          aria-label="Bad answer"
          title="Bad answer"
          onClick={() => vote('down')}
        >
          <ThumbDown />
        </button>
        {status !== 'idle' && (
          <span className={`feedback-status ${status}`} data-state={status} role="status">
            {status === 'saving' && 'Saving…'}
            {status === 'saved' && (hasNote ? 'Thanks, your feedback was recorded.' : 'Vote saved.')}
            {status === 'failed' && `Not saved${error ? `: ${error}` : '.'}`}
          </span>
        )}
        {status === 'failed' && wanted && (
          <button type="button" onClick={() => save(wanted)}>
            Retry
          </button>
        )}
      </div>
      {formOpen && wanted && (
        <form
          className="feedback-form"
          onSubmit={(event) => {
            event.preventDefault();
            sendNote();
          }}
        >
          <label>
            Comment (optional)
            <textarea value={comment} rows={2} ref={commentBox} onChange={(event) => setComment(event.target.value)} />
          </label>
          {wanted.rating === 'down' && (
            <label>
              Corrected answer (optional)
              <textarea value={correction} rows={3} onChange={(event) => setCorrection(event.target.value)} />
            </label>
          )}
          <div className="row">
            <button type="submit" className="primary">
              Send feedback
            </button>
            <button type="button" onClick={() => setFormOpen(false)}>
              Close
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
