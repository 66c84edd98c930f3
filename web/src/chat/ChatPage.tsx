import { useCallback, useEffect, useRef, useState } from 'react';
import { GearIcon } from '../Icons.tsx';
import { describeFailure } from '../lib/api.ts';
import { streamCompletion } from './completion.ts';
import { FeedbackBar } from './FeedbackBar.tsx';
import { Markdown } from './Markdown.tsx';
import { SettingsPanel } from './SettingsPanel.tsx';
import { SourcesPanel } from './SourcesPanel.tsx';
import { loadHistory, loadSettings, saveHistory, saveSettings } from './storage.ts';
import type { ChatMessage, ChatSettings } from './types.ts';

function localId(): string {
  return `m${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

export function ChatPage() {
  const [messages, setMessages] = useState<ChatMessage[]>(loadHistory);
  const [settings, setSettings] = useState<ChatSettings>(loadSettings);
  const [draft, setDraft] = useState('');
  const [settingsOpen, setSettingsOpen] = useState(false);
  const controller = useRef<AbortController | null>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const bottom = useRef<HTMLDivElement>(null);
  const streaming = messages.some((message) => message.status === 'streaming');

  useEffect(() => saveHistory(messages), [messages]);
  useEffect(() => saveSettings(settings), [settings]);
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: 'end' });
  });

  const update = useCallback((id: string, change: (message: ChatMessage) => ChatMessage) => {
    setMessages((current) => current.map((message) => (message.id === id ? change(message) : message)));
  }, []);

  const stop = useCallback(() => controller.current?.abort(), []);

  async function send() {
    const text = draft.trim();
    if (!text || streaming) return;
    const user: ChatMessage = { id: localId(), role: 'user', content: text };
    const answer: ChatMessage = { id: localId(), role: 'assistant', content: '', status: 'streaming' };
    const conversation = [...messages, user]
      .filter((message) => message.status !== 'error')
      .map((message) => ({ role: message.role, content: message.content }));
    setMessages((current) => [...current, user, answer]);
    setDraft('');
    const abort = new AbortController();
    controller.current = abort;
    try {
      await streamCompletion(
        conversation,
        settings,
        (chunk) =>
          update(answer.id, (message) => ({
            ...message,
            ...(chunk.answerId ? { answerId: chunk.answerId } : {}),
            ...(chunk.modelVersion ? { modelVersion: chunk.modelVersion } : {}),
            ...(chunk.sources ? { sources: chunk.sources } : {}),
            content: message.content + (chunk.delta ?? ''),
          })),
        abort.signal,
      );
      update(answer.id, (message) => ({ ...message, status: 'done' }));
    } catch (error) {
      if (isAbort(error)) update(answer.id, (message) => ({ ...message, status: 'stopped' }));
      else update(answer.id, (message) => ({ ...message, status: 'error', error: describeFailure(error) }));
    } finally {
      controller.current = null;
      input.current?.focus();
    }
  }

  function clear() {
    stop();
    setMessages([]);
    input.current?.focus();
  }

  return (
    <div className="chat-layout">
      <div className="chat-toolbar">
        <button
          type="button"
          className="settings-toggle"
          aria-expanded={settingsOpen}
          aria-controls="chat-settings"
          onClick={() => setSettingsOpen((open) => !open)}
        >
          <GearIcon /> Settings
        </button>
      </div>
      <aside className={`sidebar${settingsOpen ? ' open' : ''}`} id="chat-settings" aria-label="Chat settings">
        <SettingsPanel settings={settings} onChange={setSettings} />
        <button type="button" className="danger" onClick={clear} disabled={messages.length === 0}>
          Clear chat
        </button>
      </aside>
      <section className="chat" aria-label="Chat">
        <div className="messages" role="log" aria-live="polite" aria-busy={streaming}>
          {messages.length === 0 && (
            <p className="empty">Ask a question about your documents. Answers cite the passages they used.</p>
          )}
          {messages.map((message) => (
            <article
              key={message.id}
              className={`message ${message.role}`}
              data-status={message.status}
              data-answer-id={message.answerId}
            >
              <div className="message-role">
                {message.role === 'user' ? 'You' : `Bertha${message.modelVersion ? ` · ${message.modelVersion}` : ''}`}
              </div>
              {message.role === 'user' ? (
                <p className="user-text">{message.content}</p>
              ) : (
                <>
                  {message.content ? (
                    <Markdown text={message.content} />
                  ) : message.status === 'streaming' ? (
                    <p className="muted typing">Thinking…</p>
                  ) : null}
                  {message.status === 'stopped' && <p className="muted small">Stopped.</p>}
                  {message.error && (
                    <p className="error" role="alert">
                      {message.error}
                    </p>
                  )}
                  {message.sources && <SourcesPanel sources={message.sources} />}
                  {message.status !== 'streaming' && (
                    <FeedbackBar
                      message={message}
                      onChange={(feedback) => update(message.id, (current) => ({ ...current, feedback }))}
                    />
                  )}
                </>
              )}
            </article>
          ))}
          <div ref={bottom} />
        </div>
        <form
          className="composer"
          onSubmit={(event) => {
            event.preventDefault();
            void send();
          }}
        >
          <label htmlFor="prompt" className="visually-hidden">
            Message
          </label>
          <textarea
            id="prompt"
            ref={input}
            value={draft}
            rows={2}
            placeholder="Message Bertha…"
            aria-describedby="prompt-keys"
            onChange={(event) => setDraft(event.target.value)}
            onKeyDown={(event) => {
              if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
                event.preventDefault();
                void send();
              } else if (event.key === 'Escape') stop();
            }}
          />
          <span id="prompt-keys" className="visually-hidden">
            Enter sends, Shift+Enter starts a new line, Escape stops the answer.
          </span>
          {streaming ? (
            <button type="button" className="danger" onClick={stop}>
              Stop
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </form>
      </section>
    </div>
  );
}
