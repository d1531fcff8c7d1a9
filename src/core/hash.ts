import { hash } from "node:crypto";

/**
 * The content hash of a canonical record: SHA-1 of its canonical JSON, base64url (27 characters). It detects
 * change, it does not authenticate, so SHA-1's speed matters more here than its collision resistance.
 */
export function contentHash(canonicalJson: string): string {
  return hash("sha1", canonicalJson, "base64url");
}

/** A short, stable digest of several parts, e.g. an idempotency key from target, record key and content hash. */
export function digest(...parts: string[]): string {
  return hash("sha256", parts.join("\u0000"), "base64url").slice(0, 32);
}
