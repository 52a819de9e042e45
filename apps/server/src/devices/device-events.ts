import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';

/**
 * In-process notifications about devices, for parts that must react at once (the broker drops the
 * MQTT session of a deprovisioned device).
 */
@Injectable()
export class DeviceEvents {
  readonly deprovisioned$ = new Subject<{ uuid: string; fleetId: string }>();
}
