import { expect, test } from 'vitest';
import { startBerthaProcess } from '../helpers/bertha-process.ts';
import { tempDir } from '../helpers/temp.ts';

interface Readyz {
  status: string;
  checks: Record<string, { ready: boolean; detail?: string; progress?: number }>;
}

async function readyz(url: string): Promise<Readyz> {
  return (await (await fetch(`${url}/readyz`)).json()) as Readyz;
}

test('bertha up with no model trains the starter model in the background, says so on /readyz, then chats with it', async () => {
  const dataDir = tempDir();
  const bertha = await startBerthaProcess(['--data-dir', dataDir, '--set', 'trainer.starter.steps=3'], {
    BERTHA_TRAINER_STARTER_ENABLED: 'true',
  });
  const health = await fetch(`${bertha.url}/healthz`);
  expect(health.status).toBe(200);
  const first = await readyz(bertha.url);
  expect(first.checks['starter-model']).toBeDefined();

  const deadline = Date.now() + 150_000;
  let report = first;
  while (!(report.checks['starter-model']?.ready && report.checks.model?.ready) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    report = await readyz(bertha.url);
  }
  expect(report.checks['starter-model']).toMatchObject({ ready: true, progress: 1 });
  expect(report.checks.model?.detail).toMatch(/^starter: ready/);

  const response = await fetch(`${bertha.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bertha', messages: [{ role: 'user', content: 'What is Bertha?' }], max_tokens: 8 }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { choices: { message: { content: string } }[] };
  expect(typeof body.choices[0]?.message.content).toBe('string');
  bertha.child.kill('SIGTERM');
  expect(await bertha.exited).toBe(0);
}, 180_000);
