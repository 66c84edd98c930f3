import { type ChatMessage, type ChatSettings, DEFAULT_SETTINGS } from './types.ts';

const HISTORY_KEY = 'bertha.chat.history.v1';
const SETTINGS_KEY = 'bertha.chat.settings.v1';

function read<T>(key: string): T | undefined {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : undefined;
  } catch {
    return undefined;
  }
}

/** A reload mid-answer leaves a message that will never finish: it is shown as stopped. */
export function loadHistory(): ChatMessage[] {
  const messages = read<ChatMessage[]>(HISTORY_KEY);
  if (!Array.isArray(messages)) return [];
  return messages.map((message) => (message.status === 'streaming' ? { ...message, status: 'stopped' } : message));
}

export function saveHistory(messages: ChatMessage[]): void {
  localStorage.setItem(HISTORY_KEY, JSON.stringify(messages));
}

export function loadSettings(): ChatSettings {
  return { ...DEFAULT_SETTINGS, ...read<Partial<ChatSettings>>(SETTINGS_KEY) };
}

export function saveSettings(settings: ChatSettings): void {
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
}
