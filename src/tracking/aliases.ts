/** The champion serves all traffic; the challenger is the candidate (canary, shadow). */
export const CHAMPION = 'champion';
export const CHALLENGER = 'challenger';
/** The in-context (few-shot prompt) arm of a retraining run. */
export const PROMPT_CHALLENGER = 'challenger-prompt';
