import { describe } from 'vitest';
import { metadataDbContract } from '../contract/metadata-db.ts';
import { dbFactories } from '../helpers/databases.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`MetadataDb contract on ${factory.name}`, () => metadataDbContract(factory));
}
