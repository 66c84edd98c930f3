import { expect, test } from 'vitest';
import { insertAnswer } from '../helpers/answers.ts';
import { startBertha } from '../helpers/bertha.ts';
import { tempDir } from '../helpers/temp.ts';

interface Listing {
  data: { user: string; [field: string]: unknown }[];
  next_before: string | null;
}

async function getJson<T>(url: string): Promise<T> {
  return (await (await fetch(url)).json()) as T;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('POST /v1/feedback stores a vote per user, replaces a second one, and lists it', async () => {
  const bertha = await startBertha();
  const url = bertha.url as string;
  const answer = await insertAnswer(bertha.db, { modelVersion: 'v2' });

  const created = await post(
    url,
    { response_id: answer, rating: 'down', comment: 'made up' },
    { 'x-bertha-user': 'ada' },
  );
  expect(created.status).toBe(201);
  expect(created.body).toMatchObject({ response_id: answer, user: 'ada', rating: 'down', model_version: 'v2' });
  expect(await bertha.feedback.get(created.body.id as string)).toMatchObject({ rating: 'down', comment: 'made up' });

  const replaced = await post(url, { response_id: answer, rating: 'up' }, { 'x-bertha-user': 'ada' });
  expect(replaced.status).toBe(200);
  expect(replaced.body).toMatchObject({ id: created.body.id, rating: 'up', replaced: true });
  expect((await post(url, { response_id: answer, rating: 'down', user: 'bob' })).status).toBe(201);
  expect((await post(url, { response_id: answer, rating: 'down' })).body).toMatchObject({ user: 'anonymous' });

  const listed = await getJson<Listing>(`${url}/v1/feedback?model_version=v2&rating=down&limit=1`);
  expect(listed.data).toHaveLength(1);
  expect(listed.data[0]?.user).toBe('anonymous');
  const next = await getJson<Listing>(
    `${url}/v1/feedback?model_version=v2&rating=down&limit=1&before=${listed.next_before}`,
  );
  expect(next.data.map((row) => row.user)).toEqual(['bob']);
  expect((await getJson<Listing>(`${url}/v1/feedback?model_version=v9`)).data).toEqual([]);
  expect((await getJson<Record<string, unknown>>(`${url}/v1/feedback/${created.body.id}`)).rating).toBe('up');

  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metrics).toContain('bertha_feedback_total{rating="down",model_version="v2"} 3');
  expect(metrics).toContain('bertha_feedback_total{rating="up",model_version="v2"} 1');
  expect(metrics).toMatch(/bertha_feedback_down_ratio\{model_version="v2"\} 0\.66/);
  const summary = await getJson<{ data: unknown[] }>(`${url}/v1/feedback/summary`);
  expect(summary.data).toEqual([
    expect.objectContaining({ model_version: 'v2', up: 1, down: 2, up_total: 1, down_total: 3 }),
  ]);
});

test('unknown response ids answer 404 and malformed bodies 400, storing nothing', async () => {
  const bertha = await startBertha();
  const url = bertha.url as string;
  const answer = await insertAnswer(bertha.db);
  const missing = await post(url, { response_id: 'ans_nope', rating: 'up' });
  expect(missing.status).toBe(404);
  expect(missing.body).toMatchObject({ error: { code: 'not_found' } });
  for (const body of [
    { response_id: answer, rating: 'meh' },
    { response_id: answer },
    { rating: 'up' },
    { response_id: answer, rating: 'up', extra: 1 },
    '{"response_id":',
  ]) {
    const rejected = await post(url, body);
    expect(rejected.status, JSON.stringify(body)).toBe(400);
    expect(rejected.body).toMatchObject({ error: { code: 'invalid_request' } });
  }
  expect((await fetch(`${url}/v1/feedback?rating=sideways`)).status).toBe(400);
  expect((await fetch(`${url}/v1/feedback/fb_missing`)).status).toBe(404);
  expect(await bertha.feedback.list()).toHaveLength(0);
});

test('feedback counters survive a restart of Bertha on the same data dir', async () => {
  const dataDir = tempDir();
  const first = await startBertha([], dataDir);
  const answer = await insertAnswer(first.db, { modelVersion: 'v5' });
  for (const user of ['a', 'b', 'c']) {
    expect((await post(first.url as string, { response_id: answer, rating: 'down', user })).status).toBe(201);
  }
  await first.close();
  const second = await startBertha([], dataDir);
  const metrics = await (await fetch(`${second.url}/metrics`)).text();
  expect(metrics).toContain('bertha_feedback_total{rating="down",model_version="v5"} 3');
  expect(metrics).toContain('bertha_feedback_total{rating="up",model_version="v5"} 0');
  expect(metrics).toContain('bertha_feedback_down_ratio{model_version="v5"} 1');
});

async function patch(url: string, id: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/v1/feedback/${id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('PATCH /v1/feedback/:id adds the comment and correction to the vote the click created', async () => {
  const bertha = await startBertha();
  const url = bertha.url as string;
  const answer = await insertAnswer(bertha.db, { modelVersion: 'v6' });

  const clicked = await post(url, { response_id: answer, rating: 'up' });
  expect(clicked.status).toBe(201);
  const id = clicked.body.id as string;
  const commented = await patch(url, id, { comment: 'clear and short' });
  expect(commented.status).toBe(200);
  expect(commented.body).toMatchObject({ id, response_id: answer, rating: 'up', comment: 'clear and short' });
  // The other thumb, then a correction: still one row, and the change of rating counts once.
  expect((await patch(url, id, { rating: 'down', correction: 'Bertha is an LLMOps loop.' })).status).toBe(200);
  expect((await patch(url, id, { rating: 'down' })).status).toBe(200);

  const listed = await getJson<Listing>(`${url}/v1/feedback`);
  expect(listed.data).toEqual([
    expect.objectContaining({
      id,
      user: 'anonymous',
      rating: 'down',
      comment: 'clear and short',
      correction: 'Bertha is an LLMOps loop.',
    }),
  ]);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metrics).toContain('bertha_feedback_total{rating="up",model_version="v6"} 1');
  expect(metrics).toContain('bertha_feedback_total{rating="down",model_version="v6"} 1');
  expect(metrics).toContain('bertha_feedback_down_ratio{model_version="v6"} 1');

  // Only the voter may change a vote; an empty or unknown change is a 400.
  expect((await patch(url, id, { comment: 'not mine' }, { 'x-bertha-user': 'eve' })).status).toBe(404);
  expect((await patch(url, 'fb_missing', { comment: 'x' })).status).toBe(404);
  expect((await patch(url, id, {})).status).toBe(400);
  expect((await patch(url, id, { rating: 'sideways' })).status).toBe(400);
  expect((await patch(url, id, { response_id: answer })).status).toBe(400);
  expect((await bertha.feedback.get(id))?.comment).toBe('clear and short');
});

test('with API keys on and public chat, the voter can update a vote without a key', async () => {
  const bertha = await startBertha(['auth.enabled=true']);
  const url = bertha.url as string;
  const answer = await insertAnswer(bertha.db);
  const clicked = await post(url, { response_id: answer, rating: 'down' });
  expect(clicked.status).toBe(201);
  const commented = await patch(url, clicked.body.id as string, { comment: 'wrong year' });
  expect(commented.status).toBe(200);
  expect((await fetch(`${url}/v1/feedback`)).status).toBe(401);
});
