/**
 * The service name of an image from its reference: `registry:5000/org/web:2` → `web`,
 * `app@sha256:…` → `app`. Returns null when the reference carries no repository (a bare tag such as
 * `latest`, which OCI archives often use as `org.opencontainers.image.ref.name`).
 */
export function serviceNameFromReference(reference: string | null | undefined): string | null {
  if (!reference) return null;
  let repo = reference.split('@')[0] ?? '';
  const lastSlash = repo.lastIndexOf('/');
  const lastColon = repo.lastIndexOf(':');
  if (lastColon > lastSlash) repo = repo.slice(0, lastColon);
  if (!repo.includes('/') && /^[\w][\w.-]*$/.test(repo) && reference === repo && !reference.includes(':')) {
    // A lone word: an OCI ref.name that is only a tag ("latest", "2") is not a repository.
    if (/^(latest|v?\d[\w.-]*)$/.test(repo)) return null;
  }
  const base = repo.slice(repo.lastIndexOf('/') + 1).toLowerCase();
  const name = base.replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '');
  return name.length > 0 ? name.slice(0, 63) : null;
}
