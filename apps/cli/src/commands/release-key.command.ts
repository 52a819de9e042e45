import { generateKeyPairSync } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

import {
  ManifestSignatureError,
  releaseKeyId,
  signCanonical,
  verifyThreshold,
  type Fleet,
  type OnlineKey,
  type ReleaseTrust,
} from '@ferry/protocol';
import { Command } from 'commander';

import { action } from '../support/action';
import { fleetPath } from '../support/api-paths';
import { InputError } from '../support/errors';
import { print, printJson, table, time } from '../support/format';
import { positiveInteger } from '../support/parse';

/** Writes a new file, never replacing one: a release key overwritten by mistake is gone for good. */
async function writeNew(path: string, content: string, mode: number): Promise<void> {
  let file;
  try {
    file = await open(path, 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new InputError(`${path} exists: give another --out (a release key is never overwritten)`);
    throw err;
  }
  try {
    await file.writeFile(content);
    await file.chmod(mode);
    await file.sync();
  } finally {
    await file.close();
  }
}

async function readKeyFile(file: string): Promise<string> {
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read ${file}: ${err.code ?? err.message}`);
  });
}

/**
 * The fleet's next root of trust, signed on this machine by the current release keys given: checked
 * here against the fleet's current keys and threshold before anything is sent, so a wrong or missing
 * key is named locally. The private keys never leave the machine.
 */
export async function signedRotation(
  current: ReleaseTrust,
  publicKeyFiles: string[],
  threshold: number,
  signingKeyFiles: string[],
): Promise<{ trust: ReleaseTrust; signatures: ReturnType<typeof signCanonical>[] }> {
  const keys = await Promise.all(publicKeyFiles.map(readKeyFile));
  if (threshold > keys.length)
    throw new InputError(`--threshold ${threshold} is more than the ${keys.length} new keys given`);
  const trust: ReleaseTrust = { version: current.version + 1, keys, threshold };
  const signatures = await Promise.all(
    signingKeyFiles.map(async (file) => {
      try {
        return signCanonical(trust, await readKeyFile(file));
      } catch (error) {
        if (error instanceof InputError) throw error;
        throw new InputError(`${file} is not an ed25519 private key (PEM)`);
      }
    }),
  );
  try {
    verifyThreshold(trust, signatures, current, `release keys version ${trust.version}`);
  } catch (error) {
    if (error instanceof ManifestSignatureError)
      throw new InputError(
        `${error.message}: sign with ${current.threshold} of the fleet's current release keys (--sign FILE)`,
      );
    throw error;
  }
  return { trust, signatures };
}

/** Registers `ferry keys generate-release-key`, `rotate-release-keys`, `online` and `rotate-online-key`. */
export function registerReleaseKeyCommands(keys: Command): void {
  keys
    .command('generate-release-key')
    .description(
      'make an ed25519 release signing key on this machine (private key file mode 0600; never sent anywhere)',
    )
    .option('--out <file>', 'private key file; the public key goes to FILE.pub', 'ferry-release.key')
    .option('--json', 'print as JSON')
    .action(
      action(async (_context, opts: { out: string; json?: boolean }) => {
        const out = resolve(opts.out);
        const { publicKey, privateKey } = generateKeyPairSync('ed25519');
        const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
        const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
        await writeNew(out, privatePem, 0o600);
        await writeNew(`${out}.pub`, publicPem, 0o644);
        const keyId = releaseKeyId(publicPem);
        if (opts.json)
          return printJson({ keyId, privateKeyFile: out, publicKeyFile: `${out}.pub`, publicKey: publicPem });
        print(
          `release key ${keyId}\n  private: ${out} (mode 0600: keep it offline, back it up; Ferry never sees it)\n  public:  ${out}.pub\n\n` +
            `pin it on a fleet: ferry fleet create NAME --arch ARCH --release-key ${out}.pub\n` +
            `sign pushes with it: ferry push FLEET ARCHIVE --sign ${out}`,
        );
      }),
    );

  keys
    .command('rotate-release-keys')
    .description(
      "replace a fleet's release keys: the new root of trust is signed here by the current keys, so the server cannot swap them; devices follow the rotation",
    )
    .argument('<fleet>', 'fleet slug or id')
    .requiredOption('--key <public-key-file...>', 'the new release public keys (FILE.pub)')
    .requiredOption('--sign <private-key-file...>', 'current release private keys, as many as the threshold')
    .option('--threshold <k>', 'signatures a release will need from the new keys', positiveInteger, 1)
    .option('--json', 'print the fleet as JSON')
    .action(
      action(
        async (
          { connect },
          fleet: string,
          opts: { key: string[]; sign: string[]; threshold: number; json?: boolean },
        ) => {
          const client = await connect();
          const target = await client.get<Fleet>(fleetPath(fleet));
          if (!target.releaseTrust)
            throw new InputError(
              `fleet ${target.slug} has no release keys (the server signs its releases): pin keys at fleet creation`,
            );
          const body = await signedRotation(target.releaseTrust, opts.key, opts.threshold, opts.sign);
          const rotated = await client.put<Fleet>(`${fleetPath(target.slug)}/release-trust`, body);
          if (opts.json) return printJson(rotated);
          print(
            `fleet ${rotated.slug}: release keys version ${body.trust.version}, ${body.trust.threshold} of ${body.trust.keys.length} (${body.trust.keys.map((k) => releaseKeyId(k).slice(0, 12)).join(', ')})
` +
              'devices follow the rotation with their next target; releases signed only by the old keys are refused from now on',
          );
        },
      ),
    );

  keys
    .command('online')
    .description("the server's online keys that sign device targets (current, previous, retired)")
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, opts: { json?: boolean }) => {
        const listed = await (await connect()).get<OnlineKey[]>('/v1/target-keys');
        if (opts.json) return printJson(listed);
        print(
          table(
            ['SEQ', 'KEY ID', 'ROLE', 'CREATED'],
            listed.map((k) => [String(k.seq), k.keyId.slice(0, 16), k.role, time(k.createdAt)]),
          ),
        );
      }),
    );

  keys
    .command('rotate-online-key')
    .description(
      'make a new online key that signs device targets; the one before co-signs until the next rotation (docs/security.md)',
    )
    .option('--json', 'print the new key as JSON')
    .action(
      action(async ({ connect }, opts: { json?: boolean }) => {
        const created = await (await connect()).post<OnlineKey>('/v1/target-keys/rotate', {});
        if (opts.json) return printJson(created);
        print(
          `online key ${created.seq} (${created.keyId.slice(0, 16)}) now signs device targets; the one before co-signs until the next rotation.\n` +
            'Rotate again only after every device has fetched a target since (a device that misses two rotations must be re-registered).',
        );
      }),
    );
}
