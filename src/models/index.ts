export { type ModelBundle, modelBundleSchema } from './bundle.ts';
export { type BundleFiles, digestBundleFiles } from './bundle-files.ts';
export { createFileDigests, type FileDigest, type FileDigests } from './file-digest.ts';
export { configuredBundle, starterBundle } from './local-bundles.ts';
