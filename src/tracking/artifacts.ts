import path from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ObjectNotFoundError, type ObjectStore, unsafeKeyReason } from '../objects/index.ts';
import { doesNotExist, invalidParameter } from './errors.ts';
import { parseMessage } from './input.ts';
import type { TrackingStore } from './store.ts';

/** Objects behind MLflow's artifact proxy live under this prefix of the ObjectStore. */
export const ARTIFACT_PREFIX = 'mlflow-artifacts';
const ARTIFACT_SCHEME = 'mlflow-artifacts:/';

export interface FileInfo {
  path: string;
  is_dir: boolean;
  file_size?: number;
}

function objectKey(artifactPath: string): string {
  const key = `${ARTIFACT_PREFIX}/${artifactPath.replace(/^\/+/, '')}`;
  const reason = unsafeKeyReason(key);
  if (reason) throw invalidParameter(`Invalid artifact path '${artifactPath}': ${reason}`);
  return key;
}

/** The immediate children of `dir` (no trailing slash, '' for the root) among the keys under it. */
async function listChildren(objects: ObjectStore, dir: string): Promise<FileInfo[]> {
  const prefix = dir ? `${dir}/` : '';
  const children = new Map<string, FileInfo>();
  for await (const info of objects.list(prefix)) {
    const rest = info.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash === -1) children.set(rest, { path: rest, is_dir: false, file_size: info.size });
    else children.set(rest.slice(0, slash), { path: rest.slice(0, slash), is_dir: true });
  }
  return [...children.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
}

const CONTENT_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.txt': 'text/plain',
  '.yaml': 'text/yaml',
  '.yml': 'text/yaml',
  '.csv': 'text/csv',
  '.html': 'text/html',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
};

/**
 * MLflow's artifact proxy (mlflow/server/handlers.py `_upload_artifact`, `_download_artifact`,
 * `_list_artifacts_mlflow_artifacts`, `_delete_artifact_mlflow_artifacts`) over the ObjectStore,
 * plus the run-scoped `GET /mlflow/artifacts/list`.
 */
export function registerArtifactRoutes(
  app: FastifyInstance,
  deps: { objects: ObjectStore; tracking: TrackingStore },
): void {
  const { objects, tracking } = deps;
  // Uploads are streamed to the store as they arrive, whatever their content type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  app.put<{ Params: { '*': string } }>('/mlflow-artifacts/artifacts/*', async (request) => {
    const key = objectKey(request.params['*']);
    await objects.put(key, (request.body as Readable | undefined) ?? Buffer.alloc(0));
    return {};
  });

  app.get<{ Params: { '*': string } }>('/mlflow-artifacts/artifacts/*', async (request, reply) => {
    const key = objectKey(request.params['*']);
    try {
      const stream = await objects.get(key);
      const type = CONTENT_TYPES[path.extname(key).toLowerCase()] ?? 'application/octet-stream';
      return reply
        .header('content-type', type)
        .header('content-disposition', `attachment; filename="${path.basename(key)}"`)
        .send(stream);
    } catch (error) {
      if (error instanceof ObjectNotFoundError) throw doesNotExist(`Artifact '${request.params['*']}' does not exist`);
      throw error;
    }
  });

  app.get('/mlflow-artifacts/artifacts', async (request) => {
    const m = parseMessage(z.object({ path: z.string().optional() }), request.query);
    const dir = m.path ? objectKey(m.path.replace(/\/+$/, '')) : ARTIFACT_PREFIX;
    const files = await listChildren(objects, dir);
    return files.length > 0 ? { files } : {};
  });

  app.delete<{ Params: { '*': string } }>('/mlflow-artifacts/artifacts/*', async (request) => {
    const key = objectKey(request.params['*']);
    // A path names one artifact or a folder of them.
    const doomed: string[] = (await objects.head(key)) ? [key] : [];
    for await (const info of objects.list(`${key}/`)) doomed.push(info.key);
    for (const item of doomed) await objects.delete(item);
    return {};
  });

  app.get('/mlflow/artifacts/list', async (request) => {
    const m = parseMessage(
      z.object({ run_id: z.string().optional(), run_uuid: z.string().optional(), path: z.string().optional() }),
      request.query,
    );
    const runId = m.run_id || m.run_uuid;
    if (!runId) throw invalidParameter(`Missing value for required parameter 'run_id'`);
    const run = await tracking.getRun(runId);
    const rootUri = run.info.artifact_uri;
    if (!rootUri.startsWith(ARTIFACT_SCHEME)) return { root_uri: rootUri };
    const relative = (m.path ?? '').replace(/^\/+|\/+$/g, '');
    const root = rootUri.slice(ARTIFACT_SCHEME.length).replace(/^\/+/, '');
    const dir = objectKey(relative ? `${root}/${relative}` : root);
    const files = (await listChildren(objects, dir)).map((file) => ({
      ...file,
      path: relative ? `${relative}/${file.path}` : file.path,
    }));
    return { root_uri: rootUri, files };
  });
}
