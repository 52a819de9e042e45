import { Migration } from 'kysely';
import * as initial from './0001-initial';
import * as deviceState from './0002-device-state';
import * as deltas from './0003-deltas';
import * as rollouts from './0004-rollouts';
import * as dropReleaseLayers from './0005-drop-release-layers';
import * as releaseBlobs from './0006-release-blobs';
import * as variables from './0007-variables';
import * as compose from './0008-compose';
import * as operatorAccess from './0009-operator-access';
import * as releaseTrust from './0010-release-trust';
import * as oneActiveRollout from './0011-one-active-rollout';
import * as signedTargets from './0012-signed-targets';
import * as healthEvents from './0013-health-events';
import * as scheduledRollouts from './0014-scheduled-rollouts';
import * as volumePurges from './0015-volume-purges';
import * as healthEventsAge from './0016-health-events-age';
import * as updatePolicies from './0017-update-policies';
import * as reportCount from './0018-report-count';
import * as noticeResend from './0019-notice-resend';

/**
 * Every migration, in order. Add new ones at the end with the next number; never edit one that has
 * shipped.
 */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
  '0002-device-state': deviceState,
  '0003-deltas': deltas,
  '0004-rollouts': rollouts,
  '0005-drop-release-layers': dropReleaseLayers,
  '0006-release-blobs': releaseBlobs,
  '0007-variables': variables,
  '0008-compose': compose,
  '0009-operator-access': operatorAccess,
  '0010-release-trust': releaseTrust,
  '0011-one-active-rollout': oneActiveRollout,
  '0012-signed-targets': signedTargets,
  '0013-health-events': healthEvents,
  '0014-scheduled-rollouts': scheduledRollouts,
  '0015-volume-purges': volumePurges,
  '0016-health-events-age': healthEventsAge,
  '0017-update-policies': updatePolicies,
  '0018-report-count': reportCount,
  '0019-notice-resend': noticeResend,
};
