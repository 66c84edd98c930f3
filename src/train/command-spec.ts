import { z } from 'zod';

/**
 * What the `command` trainer runs, on its own so that the config schema can use it without
 * loading the trainer (and node-llama-cpp) at start-up.
 */
export const commandTrainerSchema = z
  .object({
    /** argv, the program first; placeholders are replaced, never passed through a shell. */
    command: z.array(z.string().min(1)).min(1),
    /** Working directory of the program; default: the output folder. */
    cwd: z.string().optional(),
    /** Kills the program after this long. */
    timeoutMs: z
      .number()
      .int()
      .positive()
      .default(24 * 3_600_000),
  })
  .strict();
export type CommandTrainerSpec = z.input<typeof commandTrainerSchema>;
