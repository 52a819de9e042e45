/** Injection token of the Kysely instance. Only repositories inject it. */
export const DATABASE = Symbol('DATABASE');
