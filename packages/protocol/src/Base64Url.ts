/**
 * base64url without padding (RFC 4648 §5), the text form of every key, nonce, signature, token and id.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

const alphabet = /^[A-Za-z0-9_-]*$/

/** @since 0.1.0 @category guards */
export const isBase64Url = (s: string): boolean => alphabet.test(s) && s.length % 4 !== 1

/** @since 0.1.0 @category encoding */
export const encode = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url")

/**
 * Strict decode: undefined for anything that is not canonical base64url without padding.
 *
 * @since 0.1.0
 * @category encoding
 */
export const decode = (s: string): Uint8Array | undefined => {
  if (!isBase64Url(s)) return undefined
  const bytes = Buffer.from(s, "base64url")
  // Reject non-canonical trailing bits so that one byte string has exactly one text form.
  if (bytes.toString("base64url") !== s) return undefined
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * A base64url string (no padding) on the wire. Length is checked where the meaning is known
 * (handshake, machine_add), so that a wrong length is a typed refusal, not a closed connection.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Base64UrlString = Schema.String.pipe(
  Schema.filter((s) => isBase64Url(s) || "expected base64url without padding", {
    jsonSchema: { pattern: "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$" },
    // Canonical text of random bytes (filtering random strings would be slow and rarely realistic).
    arbitrary: () => (fc) => fc.uint8Array({ maxLength: 96 }).map(encode)
  }),
  Schema.annotations({ identifier: "Base64Url", description: "base64url without padding (RFC 4648 §5)" })
)
