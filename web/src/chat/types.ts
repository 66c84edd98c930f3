/** One retrieved passage, as serving returns it beside each completion. */
export interface Source {
  chunkId: string;
  documentId: string;
  documentKey: string;
  documentVersion?: string | number | null;
  text: string;
  score: number;
  metadata?: Record<string, unknown> | null;
}

export interface FeedbackState {
  rating: 'up' | 'down';
  comment?: string;
  correction?: string;
  /** Set once the server stored it. */
  sentAt?: string;
}

export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  /** The completion id: what feedback refers to. */
  answerId?: string;
  model?: string;
  sources?: Source[];
  status?: 'streaming' | 'done' | 'stopped' | 'error';
  error?: string;
  feedback?: FeedbackState;
}

export interface ChatSettings {
  /** Empty: the server's default model. */
  model: string;
  temperature: number;
  topP: number;
  maxTokens: number;
}

export const DEFAULT_SETTINGS: ChatSettings = { model: '', temperature: 0.7, topP: 0.95, maxTokens: 512 };
