/** Passwords and admin tokens: scrypt hashes (N=2^15, r=8, p=1), compared in constant time. */
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { equalBytes, fromBase64Url, randomBytes, toBase64Url, utf8 } from '../../core/bytes.ts';

const PARAMS = { N: 2 ** 15, r: 8, p: 1, dkLen: 32 } as const;

/** `scrypt$N$r$p$salt$hash`, all base64url. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const dk = await scryptAsync(utf8(secret), salt, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${toBase64Url(salt)}$${toBase64Url(dk)}`;
}

export async function checkSecret(secret: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!m) return false;
  const dk = await scryptAsync(utf8(secret), fromBase64Url(m[4]!), {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
    dkLen: 32,
  });
  return equalBytes(dk, fromBase64Url(m[5]!));
}
