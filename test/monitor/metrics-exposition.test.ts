import { spawnSync } from 'node:child_process';
import { expect, test } from 'vitest';
import { insertAnswer } from '../helpers/answers.ts';
import { startBertha } from '../helpers/bertha.ts';
import { binariesAvailable } from '../helpers/binaries.ts';

const hasPromtool = binariesAvailable('promtool');

test.skipIf(!hasPromtool)('/metrics of a running Bertha passes promtool check metrics', async () => {
  const bertha = await startBertha();
  const url = bertha.url as string;
  // A vote, so labelled series are exposed and not only their HELP and TYPE lines.
  const answer = await insertAnswer(bertha.db, { modelVersion: 'v1' });
  const vote = await fetch(`${url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ response_id: answer, rating: 'down' }),
  });
  expect(vote.status).toBe(201);

  const scrape = await fetch(`${url}/metrics`);
  expect(scrape.status).toBe(200);
  const exposition = await scrape.text();
  expect(exposition).toContain('bertha_feedback_total{rating="down",model_version="v1"} 1');

  const check = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  const problems = `${check.stdout}${check.stderr}`;
  expect(problems).toBe('');
  expect(check.status).toBe(0);

  // Node.js's per-type gauges stay; their `_total` sums, gauges named like counters, do not.
  expect(exposition).toMatch(/^bertha_nodejs_active_handles\{type="\w+"\} \d+$/m);
  expect(exposition).not.toMatch(/^bertha_nodejs_active_\w+_total/m);
});
