import { Global, Module } from '@nestjs/common';
import { Clock, SystemClock } from './clock';

/** Provides {@link Clock} everywhere; tests replace it with `overrideProvider(Clock)`. */
@Global()
@Module({
  providers: [{ provide: Clock, useClass: SystemClock }],
  exports: [Clock],
})
export class ClockModule {}
