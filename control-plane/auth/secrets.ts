// Key secrets. A secret is 32 random bytes (256 bits) in base64url behind the prefix hcp_, so a
// leaked one is easy to spot and grep for (the habit of GitHub's ghp_ tokens). With that much
// entropy a fast hash is enough: SHA-256 of the secret is what is stored and looked up; a slow
// password hash (bcrypt, argon2) only protects low-entropy secrets people choose.
import { createHash, randomBytes } from 'node:crypto';

export const SECRET_PATTERN = /^hcp_[A-Za-z0-9_-]{20,200}$/;

export function newSecret(): string {
  return `hcp_${randomBytes(32).toString('base64url')}`;
}

export function newKeyId(): string {
  return `key_${randomBytes(8).toString('hex')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** the bearer token of an Authorization header, or null */
export function bearerOf(header: string | undefined | null): string | null {
  if (!header) return null;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}
