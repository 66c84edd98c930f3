/** Any Kubernetes object as it is written to YAML; the tests check each against its kind's schema. */
export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

/** Labels every rendered object carries (the recommended `app.kubernetes.io/*` set). */
export const PART_OF = {
  'app.kubernetes.io/part-of': 'bertha',
  'app.kubernetes.io/managed-by': 'bertha-deploy-render',
};

/** The uid and gid the image's `bertha` user has (Containerfile). */
export const IMAGE_USER = 10001;
