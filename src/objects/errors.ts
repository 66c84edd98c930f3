import { BerthaError } from '../core/errors.ts';

export class ObjectNotFoundError extends BerthaError {
  constructor(key: string) {
    super('object_not_found', `object '${key}' does not exist`, 404, { key });
  }
}
