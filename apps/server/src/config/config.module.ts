import { DynamicModule, Global, Module } from '@nestjs/common';
import { FerryConfig } from './config';

/** Injection token of the validated {@link FerryConfig}. */
export const FERRY_CONFIG = Symbol('FERRY_CONFIG');

@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: FerryConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: FERRY_CONFIG, useValue: config }],
      exports: [FERRY_CONFIG],
    };
  }
}
