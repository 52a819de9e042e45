import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config';
import { createServer } from './server.factory';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ferry server: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const app = await createServer(config);
  await app.listen(config.http.port, config.http.host);
  process.stdout.write(
    `Ferry server listening on ${config.http.publicUrl} (API docs at ${config.http.publicUrl}/docs)\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `ferry server failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
