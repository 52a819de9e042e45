import { z } from 'zod';
import { OPERATOR_ROLES, type OperatorRole } from './roles';

export const OperatorRoleSchema = z.enum(OPERATOR_ROLES);

export const ApiKeyNameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/, 'lowercase letters, digits, dots, dashes and underscores');

export const CreateApiKeySchema = z
  .object({
    name: ApiKeyNameSchema,
    role: OperatorRoleSchema,
    /** Fleet slugs or ids the key is limited to; absent or empty: every fleet (admin keys: always). */
    fleets: z.array(z.string().min(1).max(63)).max(100).optional(),
    /** When the key stops working (ISO-8601); absent: never. */
    expiresAt: z.string().datetime({ offset: true }).optional(),
  })
  .strict();
export type CreateApiKey = z.infer<typeof CreateApiKeySchema>;

/** An operator API key as listed: the secret is shown only once, when created. */
export interface ApiKey {
  id: string;
  name: string;
  role: OperatorRole;
  /** Fleet ids the key is limited to; null: every fleet. */
  fleetIds: string[] | null;
  /** The first characters of the key, to tell keys apart. */
  prefix: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface CreatedApiKey extends ApiKey {
  key: string;
}

/** Who a token is: `GET /v1/auth/whoami`. */
export interface Principal {
  /** The key's name, or `bootstrap` for the admin token of FERRY_ADMIN_TOKEN / DATA_DIR/admin-token. */
  name: string;
  role: OperatorRole;
  keyId: string | null;
  fleetIds: string[] | null;
}

/** Whether the bootstrap admin token still works: `GET /v1/auth/bootstrap-token`. */
export interface BootstrapTokenState {
  enabled: boolean;
}
