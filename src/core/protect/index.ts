/** The protection codec: protect (producer), trace (cloud), verify/open (viewer, auditor), inspect. */
export {
  protect,
  protectParsed,
  type ProtectOptions,
  type Protected,
  type ProtectReport,
} from './protect.ts';
export {
  basisVersion,
  signRelease,
  signTraceBasis,
  signTraceSlot,
  stampTraceSlot,
  placementFits,
  traceBasis,
  traceBasisOf,
  traceIdFrom,
  traceProtected,
  writeTraceSlot,
  type ReleaseOptions,
  type SignedRelease,
  type SignedRoot,
  type TraceBasis,
  type TraceOptions,
  type TracePlacement,
} from './trace.ts';
export {
  openProtected,
  traceRootCache,
  verifyProtected,
  type TraceRootCache,
  type Opened,
  type Restored,
  type VerifyOptions,
} from './open.ts';
export { inspectImage, inspectProtected, type ContainerReport } from './inspect.ts';
export { readProtected, type ProtectedImage } from './image.ts';
export type { Verdict, Check, Status, Part, TileReport } from './verdict.ts';
export {
  staticResolver,
  type SignerResolver,
  type SignerRole,
  type TrustedSigner,
} from './signers.ts';
export { pixelKey, type CipherBackend } from './cipher.ts';
