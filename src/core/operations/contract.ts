/**
 * Typed operation contracts: what a sealed session operation takes and answers, written once and
 * shared by the service that handles it and the clients that call it. The request body's JSON schema
 * is the one source: the service validates sealed bodies against it (Ajv, strict), and its TypeScript
 * type is derived from it (json-schema-to-ts `FromSchema`), so the handler, the client and the check
 * cannot drift apart. The answer is typed only (the client trusts its authenticated peer's shapes).
 */
import { PURPOSE_CODE_PATTERN } from '../policy/purposes.ts';
import type { Accepted, ObjectSchema } from '../schema.ts';

export type { Accepted, ObjectSchema } from '../schema.ts';

/** A request answered with one JSON document through `/session/message`. */
export interface MessageContract<Name extends string, Schema extends ObjectSchema, Body, Answer> {
  readonly kind: 'message';
  readonly name: Name;
  readonly schema: Schema;
  /** Never set: carry the body's type (derived from the schema once, here) and the answer's. */
  readonly body?: Body;
  readonly answer?: Answer;
}

/**
 * A request answered with a stream of bytes through `/session/stream`; `Answer` is what the bytes
 * parse to when they are one JSON document (a `jsonStream`).
 */
export interface StreamContract<Name extends string, Schema extends ObjectSchema, Body, Answer> {
  readonly kind: 'stream';
  readonly name: Name;
  readonly schema: Schema;
  readonly body?: Body;
  readonly answer?: Answer;
}

export type AnyMessageContract = MessageContract<string, ObjectSchema, unknown, unknown>;
export type AnyStreamContract = StreamContract<string, ObjectSchema, unknown, unknown>;
export type AnyContract = AnyMessageContract | AnyStreamContract;

/** The request body a contract accepts: the type of its schema. */
export type BodyOf<C extends AnyContract> = NonNullable<C['body']>;

/** The answer of a message contract. */
export type AnswerOf<C extends AnyMessageContract> = NonNullable<C['answer']>;

/** What the bytes of a JSON stream contract parse to. */
export type StreamAnswerOf<C extends AnyStreamContract> = NonNullable<C['answer']>;

/**
 * A message contract: `message<Answer>()(name, schema)`. (Curried so that the answer is named and
 * the name and schema are inferred as literals.)
 */
export const message =
  <Answer>() =>
  <const Name extends string, const Schema extends ObjectSchema>(
    name: Name,
    schema: Schema,
  ): MessageContract<Name, Schema, Accepted<Schema>, Answer> => ({ kind: 'message', name, schema });

/** A stream contract: its answer is bytes (multipart/related instances, say). */
export const stream = <const Name extends string, const Schema extends ObjectSchema>(
  name: Name,
  schema: Schema,
): StreamContract<Name, Schema, Accepted<Schema>, Uint8Array> => ({
  kind: 'stream',
  name,
  schema,
});

/** A stream contract whose bytes are one JSON document: `jsonStream<Answer>()(name, schema)`. */
export const jsonStream =
  <Answer>() =>
  <const Name extends string, const Schema extends ObjectSchema>(
    name: Name,
    schema: Schema,
  ): StreamContract<Name, Schema, Accepted<Schema>, Answer> => ({
    kind: 'stream',
    name,
    schema,
  });

// --- schema pieces shared by several contracts -------------------------------------------------

/**
 * Why the data is asked for: an HL7 v3 PurposeOfUse code (its shape here; the policy denies a code
 * outside its domain's vocabulary, and the producer refuses one before any decision).
 */
export const PURPOSE = { type: 'string', pattern: PURPOSE_CODE_PATTERN } as const;
/** 32 lowercase hex digits: a ticket id, a redemption id, a pseudonym, a study reference. */
export const HEX32 = { type: 'string', pattern: '^[0-9a-f]{32}$' } as const;
/** A DICOM UID as the services accept it. */
export const UID = { type: 'string', pattern: '^[0-9.]{1,64}$' } as const;
/** A patient id as the producer knows it. */
export const PATIENT_ID = { type: 'string', minLength: 1, maxLength: 64 } as const;
