/**
 * What the clinician just exported, said once the file is downloaded: the image as the cloud served
 * it — still encrypted and sealed, opening only with this federation's keys — carrying the trace of
 * their ticket, which names them, their device and the ticket if the file leaks.
 */
export function ExportNote({
  file,
  trace,
  onDismiss,
}: {
  file: string;
  trace: string;
  onDismiss: () => void;
}) {
  return (
    <div className="export-note" role="status" data-testid="export-note">
      <strong>Exported {file}</strong>
      <p>
        This is the image exactly as the cloud served it to you: still encrypted, and sealed by the
        producer hospital. It opens only with this federation&apos;s keys — a viewer of the
        federation, with a ticket issued to an enrolled device; from the file alone nobody sees the
        image or the patient.
      </p>
      <p>
        It carries the trace of your ticket ({trace.slice(0, 16)}…): if the file leaks, an
        auditor&apos;s trace of it names you, this device and this ticket.
      </p>
      <div className="actions">
        <button type="button" onClick={onDismiss}>
          OK
        </button>
      </div>
    </div>
  );
}
