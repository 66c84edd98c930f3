import { z } from 'zod';

/**
 * What the `command` trainer (src/train/command.ts) runs: `trainer.command` in bertha.yaml.
 * The trainer parses it again when called directly, so it has a file of its own.
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
