import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';

/** Every file under `dir` (relative), sorted; [] when it does not exist. */
export function filesUnder(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((entry) => !entry.isDirectory())
      .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
      .sort();
  } catch {
    return [];
  }
}

/**
 * POSTs `body` as a release archive on a connection of its own. The tests that use it block their
 * event loop building big fixtures between requests; a pooled keep-alive connection the server
 * closed meanwhile would then be reused and reset.
 */
export function pushArchive(
  url: string,
  fleet: string,
  token: string,
  body: Buffer,
  query = '',
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/fleets/${fleet}/releases${query}`, {
      method: 'POST',
      agent: false,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/x-tar',
        'content-length': String(body.length),
      },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
