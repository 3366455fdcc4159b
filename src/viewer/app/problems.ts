/**
 * Every failure a clinician can meet, as one clear message: what happened, why (the service's own
 * reason when it gives one, e.g. the policy rule), and what to do next. Pure: tested without a browser.
 */
import { HttpFailure, NetworkFailure, StreamCut } from '../../core/client/federation.ts';
import { isZtvError } from '../../core/errors.ts';
import { RemoteError } from '../../core/session/protocol.ts';
import { PinError } from '../trust/pin.ts';
import { TicketError } from '../study/session.ts';

export type ProblemKind =
  | 'network'
  | 'sign-in'
  | 'denied'
  | 'expired'
  | 'replayed'
  | 'device'
  | 'trust'
  | 'not-found'
  | 'unknown';

export type NextStep = 'retry' | 'sign-in' | 'enrol' | 'request-again' | 'none';

export interface Problem {
  readonly kind: ProblemKind;
  readonly title: string;
  readonly detail: string;
  readonly next: NextStep;
}

/** What the viewer was doing, for the wording. */
export type Step =
  'sign-in' | 'enrol' | 'start' | 'search' | 'consult' | 'keys' | 'redeem' | 'retrieve';

const PARTY_NAMES: Record<string, string> = {
  consumer: 'your hospital',
  producer: 'the producer hospital',
  cloud: 'the cloud provider',
  server: 'the server',
};

const status = (e: unknown): { status?: number; code?: string; message: string } => {
  if (e instanceof RemoteError) return { status: e.status, code: e.code, message: e.message };
  if (e instanceof HttpFailure) return { status: e.status, code: e.reason, message: e.message };
  if (isZtvError(e)) return { code: e.code, message: e.message };
  return { message: e instanceof Error ? e.message : String(e) };
};

export function describeProblem(e: unknown, step: Step): Problem {
  if (e instanceof NetworkFailure)
    return {
      kind: 'network',
      title: `Cannot reach ${PARTY_NAMES[e.party] ?? e.party}`,
      detail: `${e.url} does not answer. Check the network connection and try again; nothing was opened.`,
      next: 'retry',
    };
  // The client already tried to resume the transfer for a while: the images that arrived are shown.
  if (e instanceof StreamCut)
    return {
      kind: 'network',
      title: `The transfer from ${PARTY_NAMES[e.party] ?? e.party} was cut`,
      detail: `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}. Try again for the rest while the ticket is valid.`,
      next: 'retry',
    };
  if (e instanceof PinError)
    return {
      kind: 'trust',
      title: 'The federation root is not the trusted one',
      detail: `${e.message}. No image can be verified, so none is shown.`,
      // Only the device's own pin can be reset, by enrolling again (a deliberate act of the user).
      next: e.pin === 'device' ? 'enrol' : 'none',
    };
  const s = status(e);
  const m = s.message.replace(/[.\s]+$/, '');
  if (step === 'sign-in' && s.status === 401)
    return {
      kind: 'sign-in',
      title: 'Sign-in failed',
      detail: 'Unknown user or wrong password.',
      next: 'retry',
    };
  // Throttled or locked after failed sign-ins: the hospital's sentence says how long to wait.
  if (step === 'sign-in' && s.status === 429)
    return { kind: 'sign-in', title: 'Sign-in paused', detail: `${m}.`, next: 'retry' };
  // Signed out (here or elsewhere) or expired: the producer and the cloud refuse consultations.
  if (s.status === 401 || /no live sign-in/.test(s.message))
    return {
      kind: 'sign-in',
      title: 'Your sign-in has ended',
      detail: `${m}.`,
      next: 'sign-in',
    };
  if (s.code === 'bad-certificate')
    return {
      kind: 'device',
      title: 'This device is not accepted',
      detail: `${m}. If the device was revoked, enrol it again.`,
      next: 'enrol',
    };
  const expired = /expired/i.test(s.message) || s.code === 'expired';
  if (
    (step === 'keys' || step === 'redeem' || step === 'retrieve') &&
    expired &&
    (s.code === 'ticket-refused' ||
      s.code === 'expired' ||
      s.code === 'ticket' ||
      e instanceof TicketError)
  )
    return {
      kind: 'expired',
      title: 'The ticket has expired',
      detail:
        step === 'retrieve'
          ? `The cloud stopped serving the images of this ticket: ${m}. Request access again for a new ticket.`
          : `The ticket expired before the images could be retrieved (${m}). Request access again for a new ticket.`,
      next: 'request-again',
    };
  if (/replay|already redeemed/i.test(s.message))
    return {
      kind: 'replayed',
      title: 'This ticket was already used',
      detail: `${m}. A ticket opens the images once; request access again.`,
      next: 'request-again',
    };
  if (s.code === 'denied' || s.status === 403)
    return {
      kind: 'denied',
      title:
        step === 'redeem' || step === 'retrieve'
          ? "Refused by the cloud provider's policy"
          : step === 'search'
            ? "The producer hospital's policy does not let you search"
            : "Access denied by the producer hospital's policy",
      detail: `${m}.`,
      next: 'none',
    };
  if (s.status === 404)
    return { kind: 'not-found', title: 'Nothing to open', detail: `${m}.`, next: 'none' };
  // A de-identified purpose for images sealed before pixel keys: asking again changes nothing.
  if (s.code === 'identity-bound')
    return {
      kind: 'denied',
      title: 'These images cannot be released without the patient’s identity',
      detail: `${m}. The producer hospital can protect them again, which gives their pixels a key of their own.`,
      next: 'none',
    };
  if (e instanceof TicketError || s.code === 'ticket')
    return {
      kind: 'trust',
      title: 'The ticket cannot be opened on this device',
      detail: `${m}.`,
      next: 'request-again',
    };
  if (s.code === 'integrity')
    return {
      kind: 'trust',
      title: 'The federation trust material is refused',
      detail: `${m}. No image can be verified, so none is shown.`,
      next: 'none',
    };
  return {
    kind: 'unknown',
    title: step === 'retrieve' ? 'The transfer of the images failed' : 'Something went wrong',
    detail: `${m}.`,
    next: 'retry',
  };
}
