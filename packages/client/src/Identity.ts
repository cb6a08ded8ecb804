/**
 * The machine's Ed25519 identity and its key file (SPEC §5.2).
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Limits } from "@conclave/protocol"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import type * as Crypto from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Directory from "./Directory.js"

/**
 * A loaded identity. The seed never leaves it: `sign` is the only use of the private key, and
 * every rendering (`toString`, `JSON.stringify`, `util.inspect`) shows the public key only.
 *
 * @since 0.1.0
 * @category models
 */
export interface Identity {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  /** The public key as base64url (43 characters), what `conclave key` prints. */
  readonly publicKeyText: string
  /** Ed25519 signature (64 bytes) over `message`. */
  readonly sign: (message: Uint8Array) => Uint8Array
}

/** No key file. @since 0.1.0 @category errors */
export class KeyMissing extends Data.TaggedError("KeyMissing")<{ readonly path: string }> {
  override get message() {
    return `no key file at \`${this.path}\`; run \`conclave register --server <url> --username <you>\` (it creates the key and enrolls it), or \`conclave key\` to only create one`
  }
}

/** The key file does not hold a base64url 32-byte seed. @since 0.1.0 @category errors */
export class KeyCorrupt extends Data.TaggedError("KeyCorrupt")<{ readonly path: string }> {
  override get message() {
    return `keyfile does not contain a 32-byte seed (\`${this.path}\`)`
  }
}

/** Reading or writing the key file failed. @since 0.1.0 @category errors */
export class KeyIoError extends Data.TaggedError("KeyIoError")<{ readonly path: string; readonly cause: unknown }> {
  override get message() {
    return `cannot access key file \`${this.path}\`: ${
      describe(this.cause)
    } (pass a writable directory with --config-dir, or fix the permissions of this one)`
  }
}

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const inspectSymbol = Symbol.for("nodejs.util.inspect.custom")

class IdentityImpl implements Identity {
  readonly publicKeyText: string
  readonly #privateKey: Crypto.KeyObject
  readonly #seed: Redacted.Redacted<Uint8Array>
  constructor(readonly publicKey: Uint8Array, privateKey: Crypto.KeyObject, seed: Uint8Array) {
    this.publicKeyText = Base64Url.encode(publicKey)
    this.#privateKey = privateKey
    this.#seed = Redacted.make(new Uint8Array(seed))
  }
  readonly sign = (message: Uint8Array): Uint8Array => Auth.sign(this.#privateKey, message)
  /** @internal */
  seedText(): string {
    return Base64Url.encode(Redacted.value(this.#seed))
  }
  toString(): string {
    return `Identity(${this.publicKeyText}, seed=<redacted>)`
  }
  toJSON(): unknown {
    return { publicKey: this.publicKeyText, seed: "<redacted>" }
  }
  [inspectSymbol](): string {
    return this.toString()
  }
}

/**
 * Build an identity from a 32-byte seed. The caller keeps ownership of `seed` (it is copied).
 * A seed of any other length is a programming error (defect).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSeed = (seed: Uint8Array): Identity => {
  const pair = Either.getOrThrowWith(Auth.keyPairFromSeed(seed), (e) => new Error(e.message))
  return new IdentityImpl(pair.publicKey, pair.privateKey, seed)
}

/** A fresh random identity, in memory only. @since 0.1.0 @category constructors */
export const generate = (): Identity => {
  const seed = Auth.generateSeed()
  try {
    return fromSeed(seed)
  } finally {
    seed.fill(0)
  }
}

/** `<dir>/key`. @since 0.1.0 @category paths */
export const keyPath = (configDir: string): string => Path.join(configDir, "key")

const isCode = (cause: unknown, code: string): boolean =>
  typeof cause === "object" && cause !== null && (cause as { readonly code?: unknown }).code === code

const seedFromText = (text: string): Uint8Array | undefined => {
  const bytes = Base64Url.decode(text.trim())
  if (bytes === undefined) return undefined
  if (bytes.length !== Limits.SEED_BYTES) {
    bytes.fill(0)
    return undefined
  }
  return bytes
}

/**
 * Load the identity from `<dir>/key`: surrounding whitespace trimmed, base64url, exactly 32 bytes.
 *
 * @since 0.1.0
 * @category key file
 */
export const load = (configDir: string): Effect.Effect<Identity, KeyMissing | KeyCorrupt | KeyIoError> => {
  const path = keyPath(configDir)
  return Effect.tryPromise({
    try: () => Fs.readFile(path),
    catch: (cause) => isCode(cause, "ENOENT") ? new KeyMissing({ path }) : new KeyIoError({ path, cause })
  }).pipe(
    Effect.flatMap((raw) => {
      const seed = seedFromText(raw.toString("utf8"))
      raw.fill(0)
      if (seed === undefined) return Effect.fail(new KeyCorrupt({ path }))
      try {
        return Effect.succeed(fromSeed(seed))
      } finally {
        seed.fill(0)
      }
    })
  )
}

const writeKeyFile = (path: string, identity: Identity, exclusive: boolean) =>
  Effect.tryPromise({
    try: async () => {
      Directory.makeSync(Path.dirname(path))
      const text = Buffer.from(seedTextOf(identity), "utf8")
      try {
        const handle = await Fs.open(path, exclusive ? "wx" : "w", 0o600)
        try {
          await handle.writeFile(text)
          await handle.sync()
        } finally {
          await handle.close()
        }
        await Fs.chmod(path, 0o600)
      } finally {
        text.fill(0)
      }
    },
    catch: (cause) => cause
  })

const seedTextOf = (identity: Identity): string => {
  if (!(identity instanceof IdentityImpl)) throw new Error("identity was not created by @conclave/client Identity")
  return identity.seedText()
}

/**
 * Write `identity` to `<dir>/key` (creating the directory), replacing any existing key. The file is
 * created with mode 0600 at open time and forced to 0600 after writing.
 *
 * @since 0.1.0
 * @category key file
 */
export const save = (configDir: string, identity: Identity): Effect.Effect<void, KeyIoError> => {
  const path = keyPath(configDir)
  return writeKeyFile(path, identity, false).pipe(Effect.mapError((cause) => new KeyIoError({ path, cause })))
}

/**
 * Load `<dir>/key`, or generate and write a new one (exclusive create, mode 0600) when it is missing.
 *
 * @since 0.1.0
 * @category key file
 */
export const loadOrCreate = (
  configDir: string
): Effect.Effect<{ readonly identity: Identity; readonly created: boolean }, KeyCorrupt | KeyIoError> =>
  load(configDir).pipe(
    Effect.map((identity) => ({ identity, created: false })),
    Effect.catchTag("KeyMissing", ({ path }) => {
      const identity = generate()
      return writeKeyFile(path, identity, true).pipe(
        Effect.as({ identity, created: true }),
        Effect.catchAll((cause) =>
          // Lost a race with another writer: use the key it wrote.
          isCode(cause, "EEXIST")
            ? load(configDir).pipe(
              Effect.map((loaded) => ({ identity: loaded, created: false })),
              Effect.catchTag("KeyMissing", (e) => Effect.fail(new KeyIoError({ path: e.path, cause })))
            )
            : Effect.fail(new KeyIoError({ path, cause }))
        )
      )
    })
  )
