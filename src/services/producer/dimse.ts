/**
 * DICOM networking at the producer (DIMSE, PS3.7/PS3.8): a C-ECHO and C-STORE SCP on its own port
 * and AE title, for modalities and the hospital's PACS. Associations from calling AE titles the
 * operator did not list are rejected; each received instance is wrapped as a Part 10 file and
 * outsourced through the same code path as STOW-RS (`outsourcing.ts`, idempotent by the file's
 * digest), and the C-STORE response tells the truth: Success only once the cloud holds it, a
 * refusal (A700, the sender tries again later) when the cloud could not take it, an error (C000,
 * cannot understand) with the reason when the instance cannot be protected. DICOM TLS (PS3.15 B.1,
 * BCP 195: TLS 1.2 or later) with the hospital's certificate is an option.
 */
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { createServer as createTlsServer } from 'node:tls';
import { Writable } from 'node:stream';
import type * as Dimse from 'dcmjs-dimse';
import { concatBytes } from '../../core/bytes.ts';
import { parseDicom } from '../../core/dicom/parse.ts';
import { T, TS } from '../../core/dicom/tags.ts';
import { fileMeta, writeDataSet } from '../../core/dicom/write.ts';
import { isZtvError } from '../../core/errors.ts';
import type { AuditStore } from '../storage/audit-store.ts';
import type { Producer } from './outsourcing.ts';

// The package is CommonJS without named ESM exports; required, typed by its declarations.
const dimse = createRequire(import.meta.url)('dcmjs-dimse') as typeof Dimse;
const { PresentationContextResult, RejectResult, RejectSource, RejectReason, SopClass, Status } =
  dimse.constants;
// The library's own log lines name AE titles and dumps; the producer logs what it decides itself.
dimse.log.setLevel('silent');

/** DIMSE status codes of a C-STORE response (PS3.4 B.2.3). */
export const STORE_STATUS = {
  success: 0x0000,
  /** Refused: Out of Resources — the sender keeps the instance and tries again. */
  outOfResources: 0xa700,
  /** Error: Data Set does not match SOP Class — its SOP Class UID is not the request's. */
  dataSetDoesNotMatchSopClass: 0xa900,
  /** Error: Cannot understand — the instance cannot be protected as it is. */
  cannotUnderstand: 0xc000,
  processingFailure: 0x0110,
} as const;

/** Transfer syntaxes never accepted: deflate changes the bytes the digest and the seal are of. */
const REFUSED_SYNTAXES = new Set<string>([TS.DeflatedExplicitLittle]);

export interface DimseOptions {
  readonly producer: Producer;
  readonly audit: AuditStore;
  /** The producer's AE title: associations that call another are rejected. */
  readonly aeTitle: string;
  /** Calling AE titles accepted; `*` accepts any (not advised outside a closed network). */
  readonly callingAeTitles: readonly string[];
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** DICOM TLS: the hospital's certificate and key; with `ca`, senders must present a certificate it issued. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string };
  /** The largest instance accepted, in bytes (larger ones are refused with A700). */
  readonly maxInstanceBytes?: number;
  readonly log?: {
    info(o: object, msg: string): void;
    warn(o: object, msg: string): void;
  };
}

export interface DimseListener {
  readonly port: number;
  close(): Promise<void>;
}

/** A Part 10 file around a data set received in `transferSyntaxUid`, with a deterministic File Meta. */
export function part10Of(
  dataSet: Uint8Array,
  sopClassUid: string,
  sopInstanceUid: string,
  transferSyntaxUid: string,
): Uint8Array {
  // Deterministic (no source AE title, no time): the same instance sent twice, by any sender, is the
  // same file, so outsourcing's digest answers the second from its records.
  const meta = writeDataSet(fileMeta({ sopClassUid, sopInstanceUid }, transferSyntaxUid));
  return concatBytes(new Uint8Array(128), new TextEncoder().encode('DICM'), meta, dataSet);
}

/**
 * Whether the data set's SOP Class and SOP Instance UIDs (0008,0016), (0008,0018) differ from the
 * request's Affected SOP Class and Instance UIDs (PS3.4 B.2.3): the status and comment to answer.
 */
export function identityMismatch(
  file: Uint8Array,
  sopClassUid: string,
  sopInstanceUid: string,
): { status: number; comment: string } | undefined {
  let ds: ReturnType<typeof parseDicom>['dataset'];
  try {
    ds = parseDicom(file, 'the data set', { viewPixelData: true }).dataset;
  } catch (e) {
    return {
      status: STORE_STATUS.cannotUnderstand,
      comment: isZtvError(e) ? e.message : 'the data set cannot be read',
    };
  }
  const uid = (t: number) => ds.text(t)?.replace(/\0+$/, '').trim();
  if (uid(T.SOPInstanceUID) !== sopInstanceUid.trim())
    return {
      status: STORE_STATUS.cannotUnderstand,
      comment: 'SOP Instance UID differs from Affected SOP Instance UID',
    };
  if (uid(T.SOPClassUID) !== sopClassUid.trim())
    return {
      status: STORE_STATUS.dataSetDoesNotMatchSopClass,
      comment: 'SOP Class UID differs from Affected SOP Class UID',
    };
  return undefined;
}

/** Collects one C-STORE data set in memory, up to a limit past which it only counts. */
class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  size = 0;
  constructor(private readonly limit: number) {
    super({ highWaterMark: 1 << 30 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.size += chunk.length;
    if (this.size <= this.limit) this.chunks.push(chunk);
    done();
  }
}

/** The transfer syntax to accept among those proposed: Explicit VR LE, then Implicit, then the first. */
function chooseSyntax(proposed: readonly string[]): string | undefined {
  const usable = proposed.filter((ts) => !REFUSED_SYNTAXES.has(ts));
  for (const pref of [TS.ExplicitLittle, TS.ImplicitLittle]) if (usable.includes(pref)) return pref;
  return usable[0];
}

export async function startDimse(opts: DimseOptions): Promise<DimseListener> {
  const limit = opts.maxInstanceBytes ?? 256 * 1024 * 1024;
  const anyCaller = opts.callingAeTitles.includes('*');
  const accepted = new Set(opts.callingAeTitles.map((a) => a.trim()));
  // Every Storage SOP Class lives under this arc (PS3.4 B.5, PS3.6 A); Query/Retrieve does not.
  const isStorage = (uid: string) => uid.startsWith('1.2.840.10008.5.1.4.1.1.');
  const log = opts.log;

  class ProducerScp extends dimse.Scp {
    private association?: Dimse.association.Association;
    /** The last data set received, taken by the C-STORE request that follows it at once. */
    private received?: { bytes: Uint8Array; size: number; syntax: string };
    /** One instance at a time per association, answered in order. */
    private queue: Promise<void> = Promise.resolve();

    constructor(
      private readonly sock: Socket,
      options: ConstructorParameters<typeof dimse.Scp>[1],
    ) {
      super(sock, options);
    }

    override associationRequested(association: Dimse.association.Association): void {
      this.association = association;
      const calling = association.getCallingAeTitle().trim();
      const called = association.getCalledAeTitle().trim();
      const refuse = (reason: number, why: string) => {
        log?.warn({ calling, called }, `DICOM association rejected: ${why}`);
        void opts.audit
          .append({
            event: '110113',
            subtype: 'association-refused',
            action: 'E',
            outcome: 4,
            actor: { id: `ae:${calling.slice(0, 16)}` },
            objects: [],
            details: { reason: why, called: called.slice(0, 16) },
          })
          .catch(() => undefined);
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, reason);
      };
      if (called !== opts.aeTitle) {
        refuse(RejectReason.CalledAeNotRecognized, 'called AE title is not this producer’s');
        return;
      }
      if (!anyCaller && !accepted.has(calling)) {
        refuse(RejectReason.CallingAeNotRecognized, 'calling AE title not configured');
        return;
      }
      for (const { context } of association.getPresentationContexts()) {
        const abstract = context.getAbstractSyntaxUid();
        if (abstract !== SopClass.Verification && !isStorage(abstract)) {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
          continue;
        }
        const ts = chooseSyntax(context.getTransferSyntaxUids());
        if (ts) context.setResult(PresentationContextResult.Accept, ts);
        else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
      log?.info({ calling }, 'DICOM association accepted');
      this.sendAssociationAccept();
    }

    override associationReleaseRequested(): void {
      // After every C-STORE of the association has been answered.
      void this.queue.then(() => this.sendAssociationReleaseResponse());
    }

    override cEchoRequest(
      request: Dimse.requests.CEchoRequest,
      callback: (r: Dimse.responses.CEchoResponse) => void,
    ): void {
      const response = dimse.responses.CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }

    override createStoreWritableStream(): Writable {
      return new Collector(limit);
    }

    override createDatasetFromStoreWritableStream(
      writable: Writable,
      context: Dimse.association.PresentationContext,
      callback: (dataset: Dimse.Dataset) => void,
    ): void {
      // The data set is kept as received (never decoded and re-encoded by the library): its bytes
      // are what is protected and sealed.
      const c = writable as Collector;
      const syntax = context.getAcceptedTransferSyntaxUid() ?? TS.ImplicitLittle;
      this.received = {
        bytes: c.size <= limit ? new Uint8Array(Buffer.concat(c.chunks)) : new Uint8Array(0),
        size: c.size,
        syntax,
      };
      callback(new dimse.Dataset({}, syntax));
    }

    override cStoreRequest(
      request: Dimse.requests.CStoreRequest,
      callback: (r: Dimse.responses.CStoreResponse) => void,
    ): void {
      const received = this.received;
      this.received = undefined;
      const calling = this.association?.getCallingAeTitle().trim() ?? '';
      this.queue = this.queue.then(async () => {
        const response = dimse.responses.CStoreResponse.fromRequest(request);
        const answer = (status: number, comment?: string) => {
          response.setStatus(status);
          // Error Comment (0000,0902) is LO: 64 characters.
          if (comment) response.setErrorComment(comment.slice(0, 64));
          if (!this.sock.destroyed) callback(response);
        };
        if (!received) return answer(STORE_STATUS.processingFailure, 'no data set received');
        if (received.size > limit)
          return answer(STORE_STATUS.outOfResources, `instance larger than ${limit} bytes`);
        const file = part10Of(
          received.bytes,
          request.getAffectedSopClassUid(),
          request.getAffectedSopInstanceUid(),
          received.syntax,
        );
        // The data set must be the instance the request names: an instance stored under another's
        // UID would be answered from that one's record, and its File Meta would contradict it.
        const mismatch = identityMismatch(
          file,
          request.getAffectedSopClassUid(),
          request.getAffectedSopInstanceUid(),
        );
        if (mismatch) {
          log?.warn({ calling }, `C-STORE refused: ${mismatch.comment}`);
          return answer(mismatch.status, mismatch.comment);
        }
        try {
          const r =
            (await opts.producer.storedInstance(request.getAffectedSopInstanceUid())) ??
            (await opts.producer.outsource(file));
          log?.info({ calling, created: r.created }, 'C-STORE: instance stored at the cloud');
          answer(STORE_STATUS.success);
        } catch (e) {
          if (!isZtvError(e)) {
            log?.warn({ calling }, 'C-STORE failed: internal error');
            return answer(STORE_STATUS.processingFailure, 'internal error at the producer');
          }
          const transient = e.details.transient === true;
          log?.warn({ calling, code: e.code }, `C-STORE refused: ${e.message}`);
          answer(
            transient ? STORE_STATUS.outOfResources : STORE_STATUS.cannotUnderstand,
            e.message,
          );
        }
      });
    }

    override abort(): void {
      this.sock.destroy();
    }
  }

  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // Outsourcing an instance may take longer than the library's 60 s PDU timeout on a busy
    // machine: the sender is waiting for our answer then, not idle.
    const scp = new ProducerScp(socket, { pduTimeout: 30 * 60_000, associationTimeout: 60_000 });
    (scp as unknown as { connected: boolean }).connected = true;
    scp.on('networkError', () => socket.destroy());
  };
  const server: NetServer = opts.tls
    ? createTlsServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          minVersion: 'TLSv1.2',
          ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
        },
        onConnection,
      )
    : createTcpServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
