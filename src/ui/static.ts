import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/logger.ts';

/** `npm run build` writes the web UI here (web/vite.config.ts). */
export const WEB_DIST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/dist');

/**
 * Serves the built chat + dashboard at `/`. Vite names assets by content hash, so they are
 * cached for good; index.html is revalidated so a rebuild shows up on the next load.
 */
export async function registerUiRoutes(
  app: FastifyInstance,
  options: { root?: string; logger: Logger },
): Promise<void> {
  const root = options.root ?? WEB_DIST_DIR;
  if (!existsSync(path.join(root, 'index.html'))) {
    options.logger.warn({ root }, 'web UI is not built (run `npm run build`); / answers 503');
    app.get('/', async (_request, reply) =>
      reply
        .status(503)
        .type('text/plain; charset=utf-8')
        .send('The Bertha web UI is not built. Run `npm run build` (npm start does it for you).\n'),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: true,
    setHeaders(res, filePath) {
      const immutable = filePath.includes(`${path.sep}assets${path.sep}`);
      res.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  // index.html links /favicon.svg (web/public/); browsers still ask for /favicon.ico on pages
  // without that link (/metrics, the JSON APIs), and Chromium and Firefox take the SVG there too.
  app.get('/favicon.ico', (_request, reply) => reply.sendFile('favicon.svg'));
}
