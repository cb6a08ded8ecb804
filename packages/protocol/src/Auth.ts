/**
 * The authentication message of D-3 and Ed25519 over `node:crypto`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Crypto from "node:crypto"
import * as Base64Url from "./Base64Url.js"
import { NONCE_BYTES, PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES } from "./Limits.js"

/** @since 0.1.0 @category constants */
export const AUTH_CONTEXT = "conclave-auth-v1"

/**
 * The authority of a dialed URL as D-3 signs it: `host[:port]`, lowercased, default port omitted;
 * undefined when the URL does not parse or has no authority.
 *
 * @since 0.1.0
 * @category auth
 */
export const authorityOf = (url: string): string | undefined => {
  try {
    const host = new URL(url).host.toLowerCase()
    return host.length > 0 ? host : undefined
  } catch {
    return undefined
  }
}

/**
 * The exact bytes a client signs (D-3):
 * `conclave-auth-v1\n<host>\n<session handle>\n<base64url(nonce)>`.
 *
 * @since 0.1.0
 * @category auth
 */
export const authMessage = (host: string, handle: string, nonce: Uint8Array | string): Uint8Array =>
  Buffer.from(
    `${AUTH_CONTEXT}\n${host}\n${handle}\n${typeof nonce === "string" ? nonce : Base64Url.encode(nonce)}`,
    "utf8"
  )

/** The signature does not verify. @since 0.1.0 @category errors */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- no fields: `new BadSignature()`
export class BadSignature extends Data.TaggedError("BadSignature")<{}> {
  override get message() {
    return "signature verification failed"
  }
}

/** A key or signature of the wrong length or encoding. @since 0.1.0 @category errors */
export class MalformedKey extends Data.TaggedError("MalformedKey")<{ readonly detail: string }> {
  override get message() {
    return `malformed key or signature: ${this.detail}`
  }
}

const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex")
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

/** @since 0.1.0 @category models */
export interface KeyPair {
  readonly privateKey: Crypto.KeyObject
  readonly publicKey: Uint8Array
}

/**
 * Derive the key pair from a 32-byte seed. The temporary DER buffer is zeroed.
 *
 * @since 0.1.0
 * @category keys
 */
export const keyPairFromSeed = (seed: Uint8Array): Either.Either<KeyPair, MalformedKey> => {
  if (seed.length !== SEED_BYTES) return Either.left(new MalformedKey({ detail: "seed must be 32 bytes" }))
  const der = Buffer.concat([PKCS8_PREFIX, seed])
  try {
    const privateKey = Crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    const spki = Crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" })
    return Either.right({ privateKey, publicKey: new Uint8Array(spki.subarray(spki.length - PUBLIC_KEY_BYTES)) })
  } finally {
    der.fill(0)
  }
}

/** A fresh random 32-byte seed from the CSPRNG. @since 0.1.0 @category keys */
export const generateSeed = (): Uint8Array => new Uint8Array(Crypto.randomBytes(SEED_BYTES))

/** @since 0.1.0 @category signing */
export const sign = (privateKey: Crypto.KeyObject, message: Uint8Array): Uint8Array =>
  new Uint8Array(Crypto.sign(null, message, privateKey))

// Verification keys by their base64url bytes: rebuilding a KeyObject from DER costs more than the
// verify itself. Bounded; the least recently used key goes first.
const KEY_CACHE_MAX = 1024
const keyCache = new Map<string, Crypto.KeyObject>()

const publicKeyObject = (publicKey: Uint8Array): Crypto.KeyObject => {
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("base64url")
  const cached = keyCache.get(id)
  if (cached !== undefined) {
    keyCache.delete(id)
    keyCache.set(id, cached)
    return cached
  }
  const key = Crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: "der", type: "spki" })
  if (keyCache.size >= KEY_CACHE_MAX) {
    const oldest = keyCache.keys().next()
    if (oldest.done !== true) keyCache.delete(oldest.value)
  }
  keyCache.set(id, key)
  return key
}

// Encodings of the small-order points of edwards25519 (and their non-canonical twins), compared
// with the sign bit ignored. A "public key" among them verifies forged signatures for any message
// (OpenSSL accepts them), so it proves no possession: refuse it everywhere a key is accepted.
const SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
].map((hex) => Buffer.from(hex, "hex"))

/**
 * Whether a 32-byte public key encodes a small-order point (a key no one can be said to possess).
 *
 * @since 0.1.0
 * @category keys
 */
export const isSmallOrder = (publicKey: Uint8Array): boolean =>
  publicKey.length === PUBLIC_KEY_BYTES &&
  SMALL_ORDER.some((bad) => {
    for (let i = 0; i < 31; i++) if (bad[i] !== publicKey[i]) return false
    return (publicKey[31]! & 0x7f) === bad[31]
  })

/**
 * Verify an Ed25519 signature over `message` by the raw 32-byte `publicKey`.
 * Wrong lengths are `MalformedKey` (SPEC §2.6 step 6), a failed check is `BadSignature`.
 *
 * @since 0.1.0
 * @category signing
 */
export const verify = (
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array
): Either.Either<void, BadSignature | MalformedKey> => {
  if (publicKey.length !== PUBLIC_KEY_BYTES) {
    return Either.left(new MalformedKey({ detail: "public key must be 32 bytes" }))
  }
  if (signature.length !== SIGNATURE_BYTES) {
    return Either.left(new MalformedKey({ detail: "signature must be 64 bytes" }))
  }
  if (isSmallOrder(publicKey)) return Either.left(new BadSignature())
  let ok = false
  try {
    ok = Crypto.verify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    ok = false
  }
  return ok ? Either.void : Either.left(new BadSignature())
}

/** 24 CSPRNG bytes as base64url: invite tokens and instance ids (SPEC §3.13, §3.18). @since 0.1.0 @category random */
export const randomToken = (): string => Crypto.randomBytes(24).toString("base64url")

// Challenge nonces are drawn from the CSPRNG 256 at a time (one call per nonce showed in the
// handshake profile); each is copied out and its bytes in the pool are zeroed.
const NONCES_PER_DRAW = 256
let noncePool = Buffer.alloc(0)
let nonceOffset = 0

/** A 32-byte challenge nonce. @since 0.1.0 @category random */
export const randomNonce = (): Uint8Array => {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = Crypto.randomBytes(NONCE_BYTES * NONCES_PER_DRAW)
    nonceOffset = 0
  }
  const nonce = new Uint8Array(noncePool.subarray(nonceOffset, nonceOffset + NONCE_BYTES))
  noncePool.fill(0, nonceOffset, nonceOffset + NONCE_BYTES)
  nonceOffset += NONCE_BYTES
  return nonce
}
