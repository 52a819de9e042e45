import type { FerryEvent } from '@ferry/protocol';

/** Listeners a fleet tab adds for the fleet's live events (the fleet page feeds them). */
export type FleetEventHandlers = ((e: FerryEvent) => void)[];
