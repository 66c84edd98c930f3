import { expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';

interface Frame {
  id: string;
  event: string;
  data: { id: string; type: string; subject: string | null };
}

/** Reads SSE frames from a fetch body until `count` events arrived. */
async function readFrames(response: Response, count: number): Promise<Frame[]> {
  const reader = response.body?.getReader();
  if (!reader) throw new Error('no body');
  const decoder = new TextDecoder();
  let buffer = '';
  const frames: Frame[] = [];
  while (frames.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((line) => !line.startsWith(':') && line.includes(': '))
          .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
      );
      if (fields.data) frames.push({ id: fields.id ?? '', event: fields.event ?? '', data: JSON.parse(fields.data) });
    }
  }
  await reader.cancel();
  return frames;
}

test('GET /v1/stream relays bus events as SSE, filtered by type prefix', async () => {
  const bertha = await startBertha();
  const response = await fetch(`${bertha.url}/v1/stream?types=pipeline.,model.degraded`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const frames = readFrames(response, 2);
  await bertha.bus.publish({ type: 'object.created', source: 't', subject: 'skipped.md', payload: {} });
  await bertha.bus.publish({ type: 'pipeline.run.started', source: 't', subject: 'run_1', payload: {} });
  await bertha.bus.publish({ type: 'model.degraded', source: 't', subject: 'm/1', payload: {} });
  const received = await frames;
  expect(received.map((frame) => frame.event)).toEqual(['pipeline.run.started', 'model.degraded']);
  expect(received[0]?.data.subject).toBe('run_1');
  expect(received[0]?.id).toBe(received[0]?.data.id);
});

test('a client reconnecting with Last-Event-ID first receives the events it missed, in order', async () => {
  const bertha = await startBertha();
  const first = await bertha.bus.publish({ type: 'a', source: 't', subject: '1', payload: {} });
  await bertha.bus.publish({ type: 'a', source: 't', subject: '2', payload: {} });
  await bertha.bus.publish({ type: 'a', source: 't', subject: '3', payload: {} });
  const response = await fetch(`${bertha.url}/v1/stream`, { headers: { 'last-event-id': first.event.id } });
  const frames = readFrames(response, 3);
  await bertha.bus.publish({ type: 'a', source: 't', subject: '4', payload: {} });
  expect((await frames).map((frame) => frame.data.subject)).toEqual(['2', '3', '4']);
});

test('shutdown ends open event streams instead of waiting for them', async () => {
  const bertha = await startBertha();
  const response = await fetch(`${bertha.url}/v1/stream`);
  const reader = response.body?.getReader();
  await reader?.read();
  await bertha.close();
  let done = false;
  while (!done) done = (await reader?.read())?.done ?? true;
  expect(done).toBe(true);
});
