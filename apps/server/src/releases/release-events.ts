import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';
import { Release } from '@ferry/protocol';

/** In-process notice that a release was stored (delta planning and "track latest" rollouts listen). */
@Injectable()
export class ReleaseEvents {
  readonly pushed$ = new Subject<Release>();
}
