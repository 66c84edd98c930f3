import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { objectStoreContract } from '../contract/object-store.ts';
import { tempDir } from '../helpers/temp.ts';

describe('ObjectStore contract on fs', () => {
  objectStoreContract(async () => createFsObjectStore({ root: path.join(tempDir(), 'objects') }));
});

test('a folder object store never leaves temporary files behind', async () => {
  const root = tempDir();
  const store = createFsObjectStore({ root });
  await store.put('x/y.txt', 'data');
  expect(readdirSync(path.join(root, 'x'))).toEqual(['y.txt']);
});
