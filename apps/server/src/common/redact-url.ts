/** Query keys whose values never reach a log: tokens, keys, secrets, passwords, signatures. */
const SECRET_KEY = /token|key|secret|passw|signature|auth/i;

/**
 * A request URL as it may be logged: the path, and the query with the value of every secret-looking
 * key replaced. Keys are matched after percent-decoding, so `?%74oken=…` is caught like `?token=…`;
 * a URL that does not parse is reduced to its path.
 */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  let parsed: URL;
  try {
    parsed = new URL(url, 'http://request.invalid');
  } catch {
    return url.split('?')[0] ?? '';
  }
  const query = [...parsed.searchParams].map(
    ([key, value]) =>
      `${encodeURIComponent(key)}=${SECRET_KEY.test(key) ? '[Redacted]' : encodeURIComponent(value)}`,
  );
  return query.length === 0 ? parsed.pathname : `${parsed.pathname}?${query.join('&')}`;
}
