import { expect, onTestFinished, test } from 'vitest';
import { startServing } from '../chat/serving.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { tempDir } from '../helpers/temp.ts';

test('a chat completion id is the response id users vote on, counted under the answering model version', async () => {
  const tiny = await writeTinyLlama(tempDir());
  const serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 512 } });
  onTestFinished(() => serving.close());
  const completion = await serving.client.chat.completions.create({
    model: 'bertha',
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 4,
  });
  const answer = await serving.bertha.answers.get(completion.id);
  expect(answer).toBeDefined();

  const response = await fetch(`${serving.url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-bertha-user': 'ada' },
    body: JSON.stringify({ response_id: completion.id, rating: 'down', correction: 'a better answer' }),
  });
  expect(response.status).toBe(201);
  const modelVersion = answer?.modelVersion as string;
  expect(await response.json()).toMatchObject({ response_id: completion.id, model_version: modelVersion });
  const metrics = await (await fetch(`${serving.url}/metrics`)).text();
  expect(metrics).toContain(`bertha_feedback_total{rating="down",model_version="${modelVersion}"} 1`);
});
