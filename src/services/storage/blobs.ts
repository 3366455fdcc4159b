/**
 * Blobs (protected images) in a directory, behind a small interface so object storage can replace it.
 * Writes are atomic — temporary file, fsync, rename, fsync of the directory — so a crash leaves either
 * the whole blob or nothing. Callers store the blob first and commit the database row last; a blob
 * without a row is an orphan that `sweep` removes.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes, toHex } from '../../core/bytes.ts';
import { ZtvError } from '../../core/errors.ts';

export interface BlobStore {
  put(key: string, bytes: Uint8Array): Promise<void>;
  get(key: string): Promise<Uint8Array>;
  has(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  list(): Promise<string[]>;
}

const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkKey(key: string): string {
  if (!KEY.test(key) || key.includes('..'))
    throw new ZtvError('bad-input', `invalid blob key ${JSON.stringify(key)}`);
  return key;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class FileBlobStore implements BlobStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Blobs are spread over 256 sub-directories by the first two characters of a hash-like key. */
  private path(key: string): string {
    checkKey(key);
    return join(this.dir, key.slice(0, 2).padEnd(2, '_'), key);
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const path = this.path(key);
    const dir = dirname(path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${key}.${toHex(randomBytes(6))}.tmp`);
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        let off = 0;
        while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      fsyncDir(dir);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new ZtvError('bad-input', `cannot store blob ${key}: ${(e as Error).message}`);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    let b: Buffer;
    try {
      b = readFileSync(this.path(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ZtvError('bad-input', `no blob ${key}`);
      throw e;
    }
    // The file's bytes as read, not a copy of them (the cloud reads ~80 MB for a CT series).
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  async has(key: string): Promise<boolean> {
    return existsSync(this.path(key));
  }

  async delete(key: string): Promise<void> {
    rmSync(this.path(key), { force: true });
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const sub of readdirSync(this.dir)) {
      const d = join(this.dir, sub);
      if (!statSync(d).isDirectory()) continue;
      for (const f of readdirSync(d)) if (!f.startsWith('.')) out.push(f);
    }
    return out.sort();
  }

  /**
   * Removes temporary files of interrupted writes and blobs no row refers to, when they are older
   * than `minAgeMs` (a younger one may belong to a write another process has not committed yet).
   */
  async sweep(isReferenced: (key: string) => Promise<boolean>, minAgeMs = 0): Promise<string[]> {
    const removed: string[] = [];
    const before = Date.now() - minAgeMs;
    for (const sub of readdirSync(this.dir)) {
      const d = join(this.dir, sub);
      if (!statSync(d).isDirectory()) continue;
      for (const f of readdirSync(d)) {
        if (minAgeMs > 0 && statSync(join(d, f)).mtimeMs > before) continue;
        if (f.startsWith('.') && f.endsWith('.tmp')) {
          rmSync(join(d, f), { force: true });
          removed.push(f);
        } else if (!(await isReferenced(f))) {
          rmSync(join(d, f), { force: true });
          removed.push(f);
        }
      }
    }
    return removed;
  }
}
