import { useEffect, useRef, useState } from 'react';
import { KeyIcon } from './Icons.tsx';
import { describeFailure, getJson, storeApiKey, storedApiKey } from './lib/api.ts';

interface WhoAmI {
  enabled: boolean;
  chat: 'public' | 'keyed';
  key: { id: string; name: string; role: string } | null;
}

/** Shows who the stored key belongs to and lets the user enter or forget one. */
export function KeyDialog({ keyVersion }: { keyVersion: number }) {
  const [who, setWho] = useState<WhoAmI | null>(null);
  const [open, setOpen] = useState(false);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);

  // biome-ignore lint/correctness/useExhaustiveDependencies: keyVersion re-asks after the key changed.
  useEffect(() => {
    getJson<WhoAmI>('/v1/auth/whoami').then(setWho, (failure: unknown) => setError(describeFailure(failure)));
  }, [keyVersion]);

  useEffect(() => {
    if (open) dialog.current?.showModal();
    else dialog.current?.close();
  }, [open]);

  const label = !who?.enabled ? 'Open access' : who.key ? `${who.key.role}: ${who.key.name}` : 'Enter API key';
  return (
    <>
      <button type="button" className="key-button" onClick={() => setOpen(true)} data-role={who?.key?.role ?? ''}>
        <KeyIcon /> {label}
      </button>
      <dialog ref={dialog} onClose={() => setOpen(false)} aria-labelledby="key-title">
        <form
          method="dialog"
          onSubmit={(event) => {
            event.preventDefault();
            storeApiKey(draft.trim() || null);
            setDraft('');
            setOpen(false);
          }}
        >
          <h2 id="key-title">API key</h2>
          <p className="muted small">
            {who?.enabled
              ? 'This server requires a key for the dashboard. Create one with `bertha auth create-key --role viewer`.'
              : 'Access control is off on this server: no key is needed.'}
          </p>
          {who?.key && (
            <p>
              Signed in with <strong>{who.key.name}</strong> ({who.key.role}).
            </p>
          )}
          {storedApiKey() && !who?.key && <p className="error">The stored key was not accepted.</p>}
          {error && <p className="error">{error}</p>}
          <label htmlFor="api-key">Key</label>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            value={draft}
            placeholder="bk_…"
            onChange={(event) => setDraft(event.target.value)}
          />
          <div className="row">
            <button type="submit" className="primary">
              Save key
            </button>
            <button
              type="button"
              onClick={() => {
                storeApiKey(null);
                setOpen(false);
              }}
            >
              Forget key
            </button>
            <button type="button" onClick={() => setOpen(false)}>
              Close
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
