import { generateKeyPairSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';

import { releaseKeyId } from '@ferry/protocol';
import { Command } from 'commander';

import { action } from '../support/action';
import { InputError } from '../support/errors';
import { print, printJson } from '../support/format';

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

/** Registers `ferry keys generate-release-key`. */
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
}
