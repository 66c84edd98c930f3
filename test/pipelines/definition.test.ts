import { describe, expect, test } from 'vitest';
import { definePipeline, resolveRunParams } from '../../src/pipelines/definition.ts';

const base = { name: 'p', description: 'test' };

describe('pipeline definitions are checked when defined', () => {
  test('a dependency cycle is named step by step', () => {
    expect(() =>
      definePipeline({
        ...base,
        steps: [
          { name: 'a', handler: 'h', dependsOn: ['c'] },
          { name: 'b', handler: 'h', dependsOn: ['a'] },
          { name: 'c', handler: 'h', dependsOn: ['b'] },
        ],
      }),
    ).toThrow("pipeline 'p': dependency cycle a -> c -> b -> a");
  });

  test('a dependency on a step that does not exist is rejected', () => {
    expect(() => definePipeline({ ...base, steps: [{ name: 'a', handler: 'h', dependsOn: ['ghost'] }] })).toThrow(
      "step 'a' depends on unknown step 'ghost'",
    );
  });

  test('an input from an output the producer does not declare is rejected', () => {
    expect(() =>
      definePipeline({
        ...base,
        steps: [
          { name: 'a', handler: 'h', outputs: ['x'] },
          { name: 'b', handler: 'h', inputs: { y: { from: 'a', artifact: 'y' } } },
        ],
      }),
    ).toThrow("step 'b' input 'y' names 'a.y', which that step does not output");
  });

  test('a step reading a parameter the pipeline does not declare is rejected', () => {
    expect(() =>
      definePipeline({
        ...base,
        params: { k: { type: 'string', description: '' } },
        steps: [{ name: 'a', handler: 'h', params: ['key'] }],
      }),
    ).toThrow("step 'a' reads unknown parameter 'key'");
  });

  test('duplicate steps, bad names, wrong default types and negative retry limits are rejected', () => {
    expect(() =>
      definePipeline({
        ...base,
        steps: [
          { name: 'a', handler: 'h' },
          { name: 'a', handler: 'h' },
        ],
      }),
    ).toThrow('defined twice');
    expect(() => definePipeline({ ...base, steps: [{ name: 'A_b', handler: 'h' }] })).toThrow('lower-case');
    expect(() =>
      definePipeline({
        ...base,
        params: { n: { type: 'number', description: '', default: 'x' } },
        steps: [{ name: 'a', handler: 'h' }],
      }),
    ).toThrow("parameter 'n' default is not a number");
    expect(() => definePipeline({ ...base, steps: [{ name: 'a', handler: 'h', retry: { limit: -1 } }] })).toThrow(
      'retry limit',
    );
    expect(() => definePipeline({ ...base, steps: [] })).toThrow('has no steps');
  });

  test('inputs make their producers dependencies and steps come out in a topological order', () => {
    const definition = definePipeline({
      ...base,
      steps: [
        { name: 'c', handler: 'h', inputs: { x: { from: 'b', artifact: 'x' } } },
        { name: 'b', handler: 'h', dependsOn: ['a'], outputs: ['x'] },
        { name: 'a', handler: 'h' },
      ],
    });
    expect(definition.steps.map((step) => step.name)).toEqual(['a', 'b', 'c']);
    expect(definition.steps[2]?.dependsOn).toEqual(['b']);
  });

  test('run parameters are typed from strings, defaulted, and unknown ones refused', () => {
    const definition = definePipeline({
      ...base,
      params: {
        n: { type: 'number', description: '' },
        flag: { type: 'boolean', description: '', default: false },
        s: { type: 'string', description: '', default: 'x' },
      },
      steps: [{ name: 'a', handler: 'h' }],
    });
    expect(resolveRunParams(definition, { n: '3', flag: 'true' })).toEqual({ n: 3, flag: true, s: 'x' });
    expect(() => resolveRunParams(definition, { n: 'three' })).toThrow("parameter 'n' must be a number");
    expect(() => resolveRunParams(definition, { n: 1, extra: 1 })).toThrow("has no parameter 'extra'");
  });
});
