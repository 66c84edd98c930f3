export { registerUiRoutes, WEB_DIST_DIR } from './static.ts';
