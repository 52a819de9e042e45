import { z } from 'zod';
import {
  MAX_VARIABLE_NAME_LENGTH,
  RESERVED_VARIABLE_PREFIX,
  VARIABLE_LEVELS,
  type VariableLevel,
} from './variable-levels';

/**
 * A variable name: a POSIX environment variable name (letters, digits, underscores, not starting with
 * a digit), at most 128 characters, not in Ferry's reserved `FERRY_` namespace, not `__proto__`.
 */
export const VariableNameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_VARIABLE_NAME_LENGTH)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'letters, digits and _ only, not starting with a digit (POSIX)')
  .refine((name) => !name.startsWith(RESERVED_VARIABLE_PREFIX), {
    message: `names starting with ${RESERVED_VARIABLE_PREFIX} are reserved for Ferry`,
  })
  // As a key of a JavaScript object it would set the object's prototype instead of a property.
  .refine((name) => name !== '__proto__', { message: '__proto__ is reserved' });

/** A service name as releases name services (compose service names). */
export const VariableServiceSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, _ . - (a service name)');

/**
 * A value: any text without NUL (an environment cannot hold one). Its size limit
 * (`MAX_VARIABLE_VALUE_BYTES` of UTF-8) is checked after parsing, answered 413 naming the variable.
 */
export const VariableValueSchema = z.string().refine((v) => !v.includes('\0'), {
  message: 'must not contain NUL characters',
});

/** Body of `POST /v1/fleets/:fleet/variables` and `POST /v1/devices/:uuid/variables`. */
export const SetVariableSchema = z
  .object({
    name: VariableNameSchema,
    value: VariableValueSchema,
    /** The service it applies to; absent or null: every service. */
    service: VariableServiceSchema.nullable().optional(),
    /** Never shown back in full. Absent: an existing variable keeps its flag, a new one is not secret. */
    secret: z.boolean().optional(),
  })
  .strict();
export type SetVariable = z.infer<typeof SetVariableSchema>;

/** Query of the variable lists and of `DELETE …/variables/:name`. */
export const VariableQuerySchema = z.object({ service: VariableServiceSchema.optional() }).strict();

export const VariableLevelSchema = z.enum(VARIABLE_LEVELS);

/** A variable as the operator API shows it: a secret's value is null. */
export interface Variable {
  name: string;
  /** Null when the variable is secret: only devices receive it. */
  value: string | null;
  secret: boolean;
  service: string | null;
  level: VariableLevel;
  updatedAt: string;
}

/** The answer of `GET /v1/fleets/:fleet/variables` and `GET /v1/devices/:uuid/variables`. */
export interface VariableList {
  fleetId: string;
  /** The device whose variables these are, or null for a fleet's. */
  uuid: string | null;
  /** The service the list is resolved for (`?service=`), or null: every setting of every level. */
  service: string | null;
  /** For a device: the version of its variables now; for a fleet: the fleet's revision. */
  version: number;
  /** For a device: the version it last reported running, or null. */
  reportedVersion: number | null;
  variables: Variable[];
}
