/**
 * Hands a file to the browser as a download (an object URL revoked right after): the auditor's
 * exports, the traced image export and the measurements' SR.
 */
export interface SavedFile {
  readonly name: string;
  readonly type: string;
  readonly text: string | Uint8Array<ArrayBuffer>;
}

export function saveFile(file: SavedFile): void {
  const url = URL.createObjectURL(new Blob([file.text], { type: file.type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = file.name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
