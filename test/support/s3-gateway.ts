import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const run = promisify(execFile);

/**
 * A real S3 server for tests: the Ceph RADOS gateway. `.ci/run` starts one and passes it in
 * `TEST_S3_ENDPOINT` (with `TEST_S3_ACCESS_KEY` / `TEST_S3_SECRET_KEY`); a suite run alone starts its
 * own with test/tools/ceph-rgw (or `FERRY_CEPH_RGW_DIR`)
 * and stops it afterwards. Each suite works in buckets of its own.
 */
export interface S3Gateway {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  client: S3Client;
  /** A new empty bucket with a random name. */
  newBucket(): Promise<string>;
  /** The environment a server or worker needs to use `bucket` (BLOB_STORE and the AWS variables). */
  env(bucket: string, prefix?: string): Record<string, string>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * The ceph-rgw tool: `FERRY_CEPH_RGW_DIR`, else the copy in this repository (test/tools/ceph-rgw), so a
 * clone anywhere finds it.
 */
export function cephToolDir(): string {
  if (process.env.FERRY_CEPH_RGW_DIR) return process.env.FERRY_CEPH_RGW_DIR;
  const bundled = resolve(__dirname, '..', 'tools', 'ceph-rgw');
  if (existsSync(join(bundled, 'start.sh'))) return bundled;
  throw new Error(`no ceph-rgw tool at ${bundled} (set FERRY_CEPH_RGW_DIR or TEST_S3_ENDPOINT)`);
}

function gateway(
  endpoint: string,
  accessKey: string,
  secretKey: string,
  stop: () => Promise<void>,
): S3Gateway {
  const region = 'us-east-1';
  const client = new S3Client({
    region,
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    accessKey,
    secretKey,
    region,
    client,
    newBucket: async () => {
      const bucket = `ferry-test-${randomBytes(6).toString('hex')}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    env: (bucket, prefix = '') => ({
      BLOB_STORE: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: accessKey,
      AWS_SECRET_ACCESS_KEY: secretKey,
      BLOB_S3_FORCE_PATH_STYLE: 'true',
    }),
    stop: async () => {
      client.destroy();
      await stop();
    },
  };
}

export async function startS3Gateway(): Promise<S3Gateway> {
  const shared = process.env.TEST_S3_ENDPOINT;
  if (shared) {
    return gateway(
      shared,
      process.env.TEST_S3_ACCESS_KEY ?? 'TESTACCESSKEY0000001',
      process.env.TEST_S3_SECRET_KEY ?? 'testsecretkey0000000000000000000000000001',
      () => Promise.resolve(),
    );
  }
  const tool = cephToolDir();
  const base = mkdtempSync(join(tmpdir(), 'ferry-ceph-'));
  const [rgwPort, monPort] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    BASE: join(base, 'ceph'),
    RGW_PORT: String(rgwPort),
    MON_PORT: String(monPort),
  };
  const stop = async (): Promise<void> => {
    await run(join(tool, 'stop.sh'), [], { env, timeout: 120_000 }).catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  };
  try {
    await run(join(tool, 'start.sh'), [], { env, timeout: 180_000 });
  } catch (error) {
    await stop();
    throw error;
  }
  return gateway(
    `http://127.0.0.1:${rgwPort}`,
    'TESTACCESSKEY0000001',
    'testsecretkey0000000000000000000000000001',
    stop,
  );
}
