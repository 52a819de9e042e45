import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { writeFileDurable } from '@ferry/storage';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { hashSecret, newSecret, secretMatches } from './secrets';

/**
 * The operator's admin token: `FERRY_ADMIN_TOKEN`, or generated on first start, saved as
 * `DATA_DIR/admin-token` (mode 0600) and printed once.
 */
@Injectable()
export class AdminTokenService implements OnModuleInit {
  private readonly logger = new Logger(AdminTokenService.name);
  private tokenHash = '';

  constructor(@Inject(FERRY_CONFIG) private readonly config: FerryConfig) {}

  async onModuleInit(): Promise<void> {
    if (this.config.adminToken) {
      this.tokenHash = hashSecret(this.config.adminToken);
      return;
    }
    const file = join(this.config.dataDir, 'admin-token');
    try {
      this.tokenHash = hashSecret((await readFile(file, 'utf8')).trim());
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const token = newSecret();
    await mkdir(this.config.dataDir, { recursive: true });
    await writeFileDurable(file, `${token}\n`, 0o600);
    this.tokenHash = hashSecret(token);
    // Printed once, on the first start; afterwards it is only in the file.
    process.stdout.write(
      `\nFerry generated an admin token (saved to ${file}, mode 0600):\n\n    ${token}\n\nUse it as "Authorization: Bearer <token>" or with: ferry login --url ${this.config.http.publicUrl} --token <token>\n\n`,
    );
    this.logger.log(`admin token generated and saved to ${file}`);
  }

  matches(token: string): boolean {
    return secretMatches(token, this.tokenHash);
  }
}
