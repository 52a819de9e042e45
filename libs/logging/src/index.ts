export { createLogger, type LogFormat, type LogLevel } from './create-logger';
export { PinoLoggerService, requestLogger } from './pino-logger.service';
