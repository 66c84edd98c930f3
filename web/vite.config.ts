import path from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const webDir = path.dirname(fileURLToPath(import.meta.url));

// Built into web/dist and served by `bertha up` at `/`; everything is bundled (no CDN at run time).
export default defineConfig({
  root: webDir,
  base: '/',
  plugins: [react()],
  build: { outDir: path.join(webDir, 'dist'), emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 800 },
  server: { proxy: { '/v1': 'http://127.0.0.1:8080', '/api': 'http://127.0.0.1:8080' } },
});
