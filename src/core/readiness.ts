export interface ReadinessResult {
  ready: boolean;
  /** What the component is doing or waiting for, in words a user understands. */
  detail?: string;
  /** 0..1 for long first-run work (building the starter model, say). */
  progress?: number;
}

export interface ReadinessCheck {
  name: string;
  check(): Promise<ReadinessResult> | ReadinessResult;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, ReadinessResult>;
}

export interface Readiness {
  register(check: ReadinessCheck): void;
  evaluate(): Promise<ReadinessReport>;
}

const CHECK_TIMEOUT_MS = 2_000;

async function runCheck(check: ReadinessCheck): Promise<ReadinessResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ReadinessResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ready: false, detail: `no answer within ${CHECK_TIMEOUT_MS} ms` }),
      CHECK_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([Promise.resolve().then(() => check.check()), timeout]);
  } catch (error) {
    return { ready: false, detail: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** Components register what `/readyz` waits for; every check runs on each request, in parallel. */
export function createReadiness(): Readiness {
  const checks: ReadinessCheck[] = [];
  return {
    register(check) {
      checks.push(check);
    },
    async evaluate() {
      const results = await Promise.all(checks.map(async (check) => [check.name, await runCheck(check)] as const));
      return { ready: results.every(([, result]) => result.ready), checks: Object.fromEntries(results) };
    },
  };
}
