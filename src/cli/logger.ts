import { createLogger, type Logger } from '../core/logger.ts';

/**
 * The logger of a command's in-process Bertha. Standard output carries what the command
 * prints (tables, file lists, JSON lines) and may be piped, so log lines go to standard error.
 */
export function cliLogger(level: string): Logger {
  return createLogger(level, process.stderr);
}
