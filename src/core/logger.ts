import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Structured JSON logs on stdout; every capability gets a child logger with its own `component`. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: 'bertha' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
