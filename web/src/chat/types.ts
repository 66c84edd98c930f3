/** One retrieved passage, as serving returns it beside each completion (text when the server sends it). */
export interface Source {
  chunkId: string;
  documentId: string;
  documentKey: string;
  documentVersion?: string | number | null;
  text?: string;
  score: number;
}

/** The user's feedback on one answer, kept with the chat history. */
export interface FeedbackState {
  rating: 'up' | 'down';
  comment?: string;
  correction?: string;
  /** The server's feedback id, from the vote's POST: later changes update that row. */
  id?: string;
  /** Set once the server stored everything above; absent while a save is pending or failed. */
  sentAt?: string;
}

export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  /** The completion id: what feedback refers to. */
  answerId?: string;
  /** The model bundle version that answered. */
  modelVersion?: string;
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
