import { BerthaError } from '../core/errors.ts';

/**
 * MLflow's error codes (mlflow/protos/databricks.proto ErrorCode) and the HTTP statuses
 * MLflow's server maps them to (mlflow/exceptions.py ERROR_CODE_TO_HTTP_STATUS).
 */
export const MLFLOW_ERROR_STATUS = {
  INTERNAL_ERROR: 500,
  BAD_REQUEST: 400,
  INVALID_PARAMETER_VALUE: 400,
  RESOURCE_ALREADY_EXISTS: 400,
  RESOURCE_DOES_NOT_EXIST: 404,
  ENDPOINT_NOT_FOUND: 404,
  INVALID_STATE: 400,
  PERMISSION_DENIED: 403,
  UNAUTHENTICATED: 401,
} as const;

export type MlflowErrorCode = keyof typeof MLFLOW_ERROR_STATUS;

/** An error the tracking API renders in MLflow's `{error_code, message}` shape. */
export class MlflowError extends BerthaError {
  constructor(code: MlflowErrorCode, message: string) {
    super(code, message, MLFLOW_ERROR_STATUS[code]);
  }
}

export function invalidParameter(message: string): MlflowError {
  return new MlflowError('INVALID_PARAMETER_VALUE', message);
}

export function doesNotExist(message: string): MlflowError {
  return new MlflowError('RESOURCE_DOES_NOT_EXIST', message);
}

export function alreadyExists(message: string): MlflowError {
  return new MlflowError('RESOURCE_ALREADY_EXISTS', message);
}
