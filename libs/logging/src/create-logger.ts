import pino, { type Logger } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'json' | 'pretty';

/** pino-pretty is a development dependency: production images log JSON whatever was asked. */
function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The one pino logger of a Ferry process (server or worker), so both write the same line format:
 * JSON, or pino-pretty's single line at a terminal.
 */
export function createLogger(options: { level: LogLevel; format: LogFormat; name: string }): Logger {
  return pino({
    level: options.level,
    name: options.name,
    ...(options.format === 'pretty' && prettyAvailable()
      ? {
          transport: {
            target: 'pino-pretty',
            options: { singleLine: true, ignore: 'pid,hostname,req,res' },
          },
        }
      : {}),
  });
}
