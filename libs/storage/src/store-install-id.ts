import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { BlobStoreConfig, s3ClientFor } from './blob-store-config';
import { writeFileDurable } from './durable-file';
import { INSTALL_ID_FILE, ensureInstallId, readInstallId } from './install-id';

const INSTALL_ID = /^[0-9a-f]{16}$/;

/**
 * The install id of the processes sharing `blobs`: with the file store the one in `DATA_DIR` (they
 * share that folder); with an object store the one kept in the store (`<prefix>install-id`), where
 * every server and worker of the install finds it without a shared disk. The store's id is copied to
 * `DATA_DIR/install-id`, so code that reads the local file (a sandboxed job processor) sees the same.
 * The first process to start on an empty store creates it; processes starting at the same instant on
 * an empty store read back whichever write landed last.
 */
export async function ensureSharedInstallId(
  blobs: BlobStoreConfig,
  dataDir: string,
): Promise<{ id: string; created: boolean }> {
  if (blobs.kind === 'file') return ensureInstallId(dataDir);
  const client = s3ClientFor(blobs);
  const key = `${blobs.prefix}${INSTALL_ID_FILE}`;
  const read = async (): Promise<string | null> => {
    try {
      const object = await client.send(new GetObjectCommand({ Bucket: blobs.bucket, Key: key }));
      const text = ((await object.Body?.transformToString('utf8')) ?? '').trim();
      if (!INSTALL_ID.test(text))
        throw new Error(`s3://${blobs.bucket}/${key} does not hold a Ferry install id (16 hex digits)`);
      return text;
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) return null;
      throw error;
    }
  };
  try {
    let id = await read();
    let created = false;
    if (id === null) {
      await client.send(
        new PutObjectCommand({ Bucket: blobs.bucket, Key: key, Body: `${randomBytes(8).toString('hex')}\n` }),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      id = await read();
      if (id === null) throw new Error(`s3://${blobs.bucket}/${key} vanished right after it was written`);
      created = true;
    }
    if ((await readInstallId(dataDir).catch(() => null)) !== id) {
      await mkdir(dataDir, { recursive: true });
      await writeFileDurable(join(dataDir, INSTALL_ID_FILE), `${id}\n`, 0o644);
    }
    return { id, created };
  } finally {
    client.destroy();
  }
}
