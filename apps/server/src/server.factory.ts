import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { createLogger, PinoLoggerService } from '@ferry/logging';
import { AppModule } from './app.module';
import { ErrorFilter } from './common/error.filter';
import { keepConnectionsAlive } from './common/http-keep-alive';
import { requestLogging } from './common/request-logging';
import { FerryConfig } from './config/config';

/**
 * Builds the server application (not yet listening): used by main.ts and by tests that boot the
 * real module graph.
 */
export async function createServer(
  config: FerryConfig,
  options: { quiet?: boolean } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bufferLogs: true,
    logger: options.quiet ? false : undefined,
    // JSON bodies only; release archives are read as streams by their controller.
    bodyParser: false,
  });
  const logger = createLogger({
    level: options.quiet ? 'silent' : config.logLevel,
    format: config.logFormat,
    name: 'server',
  });
  app.useLogger(new PinoLoggerService(logger));
  app.use(requestLogging(logger));
  app.useBodyParser('json', { limit: '1mb' });
  // X-Forwarded-For only from proxies the operator named: from anyone else it is a spoofable header.
  app.set('trust proxy', config.http.trustedProxies.length > 0 ? config.http.trustedProxies : false);
  app.useGlobalFilters(new ErrorFilter());
  app.enableShutdownHooks();
  keepConnectionsAlive(app.getHttpServer());
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Ferry')
      .setDescription(
        'Fleet update service: fleets, devices, releases, deltas, rollouts. Operator routes take the admin token; /v1/device routes a device key.',
      )
      .setVersion('1')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  return app;
}
