/**
 * Types from JSON schemas: the TypeScript type of what a schema accepts, derived from the schema
 * itself (json-schema-to-ts `FromSchema`, types only), so that a validated body and its type have
 * one source.
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';

/** A JSON schema object. */
export type ObjectSchema = Extract<JSONSchema, object>;

/** A type with every property and array read-only, all the way down. */
export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The type of what a JSON schema accepts, read-only (handlers and clients never mutate bodies). */
export type Accepted<Schema extends ObjectSchema> = DeepReadonly<FromSchema<Schema>>;
