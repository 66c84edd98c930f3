export { type ModelBundle, modelBundleSchema } from './bundle.ts';
