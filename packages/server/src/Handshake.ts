/**
 * The handshake (SPEC §2.6, DECISIONS D-3, D-8, D-10, G-18): `hello` → `challenge` → `register`
 * + `auth` or `auth`, proven by an Ed25519 signature over the challenge, bound to the host the
 * server answers as. One implementation, run by the connection's fiber; every refusal is a
 * `HandshakeRefused` carrying the error frame to send before closing.
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, Errors, type Frames, Limits, Validate } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Admins from "./Admins.js"
import { traced } from "./internal/traced.js"
import type { Link } from "./Link.js"
import type { RegisterLimiter } from "./RateLimit.js"
import type { ServerConfigShape } from "./ServerConfig.js"
import type { StoreShape } from "./Store.js"

/** The handshake was refused: send `error`, then close (1008). @since 0.1.0 @category errors */
export class HandshakeRefused extends Data.TaggedError("HandshakeRefused")<{ readonly error: Frames.ProtocolError }> {}

/** The peer left during the handshake: nothing to answer. @since 0.1.0 @category errors */
export class PeerClosed extends Data.TaggedError("PeerClosed") {}

// One instance: it carries nothing, and building an Error (its stack) per closed connection showed in
// the handshake profile.
const peerClosed = new PeerClosed()

/** Who completed the handshake. @since 0.1.0 @category models */
export interface Authenticated {
  readonly hello: Frames.ClientFrameOf<"hello">
  readonly user: string
  readonly machine: string
}

/** What the handshake needs of the server, derived once per server. @since 0.1.0 @category models */
export interface HandshakeEnv {
  readonly config: ServerConfigShape
  readonly store: StoreShape
  readonly registerLimiter: RegisterLimiter
  readonly admins: Admins.Allowlist
  /** The authorities of the public URLs (D-3). */
  readonly authorities: ReadonlyArray<string>
  /** How the public URLs are named in a host refusal. */
  readonly named: ReadonlyArray<string>
}

/** @since 0.1.0 @category constructors */
export const makeEnv = (
  input: Pick<HandshakeEnv, "config" | "store" | "registerLimiter">
): HandshakeEnv => {
  const parsed = input.config.publicUrls.map((url) => Auth.authorityOf(url))
  return {
    ...input,
    admins: Admins.allowlist(input.config.admins),
    authorities: parsed.filter((a) => a !== undefined),
    named: parsed.map((a, i) => a ?? input.config.publicUrls[i]!)
  }
}

/** What the transport knows about the connection. @since 0.1.0 @category models */
export interface Peer {
  readonly remoteAddress: string
  /** The request's `Host` header, lowercased ("" when absent). */
  readonly hostHeader: string
}

const refuse = (error: Frames.ProtocolError) => Effect.fail(new HandshakeRefused({ error }))
const check = (problem: Frames.ProtocolError | undefined) => problem === undefined ? Effect.void : refuse(problem)

const stripDefaultPort = (host: string) => host.replace(/:(80|443)$/, "")

/** D-3: `hello.host` must be an authority this server answers as; the refusal, or `undefined`. */
const hostProblem = (
  env: HandshakeEnv,
  peer: Peer,
  hello: Frames.ClientFrameOf<"hello">
): Frames.ProtocolError | undefined => {
  if (hello.host === null) return undefined
  const signed = hello.host.toLowerCase()
  if (
    signed === peer.hostHeader || signed === stripDefaultPort(peer.hostHeader) || env.authorities.includes(signed)
  ) return undefined
  const answersAs = [...new Set([peer.hostHeader, ...env.named])]
    .filter((h) => h.length > 0)
    .map((h) => `\`${h}\``)
    .join(" or ")
  return Errors.unauthorized(`signed for host \`${hello.host}\` but this server answers as ${answersAs}`)
}

/** The signature over the challenge; the refusal, or `undefined` when it verifies. */
const signatureProblem = (
  peer: Peer,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  auth: Frames.ClientFrameOf<"auth">
): Frames.ProtocolError | undefined => {
  const key = Base64Url.decode(auth.pubkey) ?? new Uint8Array()
  const sig = Base64Url.decode(auth.signature) ?? new Uint8Array()
  const verified = Auth.verify(key, Auth.authMessage(hello.host ?? peer.hostHeader, hello.session, nonce), sig)
  if (Either.isRight(verified)) return undefined
  return verified.left._tag === "MalformedKey"
    ? Errors.malformed(verified.left.message)
    : Errors.unauthorized(verified.left.message)
}

const timedOut = new HandshakeRefused({ error: Errors.unauthorized(Errors.Messages.handshakeTimedOut) })

const storeFailure = (operation: string) => (e: { readonly cause: unknown }) =>
  Effect.logWarning("store failure").pipe(
    Effect.annotateLogs({ operation, cause: String(e.cause) }),
    Effect.zipRight(refuse(Errors.internal(Errors.Messages.storageFailure(operation))))
  )

/**
 * Run the handshake on `link` until it is established or refused. The caller arms the deadline
 * (`Link.expire`); a step still running when it passes (a slow store) is refused once it ends.
 *
 * @since 0.1.0
 * @category handshake
 */
export const run = (
  env: HandshakeEnv,
  link: Link,
  peer: Peer
): Effect.Effect<Authenticated, HandshakeRefused | PeerClosed> => {
  const { config, store } = env
  const nextFrame = Effect.flatMap(
    link.next,
    (inbound): Effect.Effect<Frames.ClientFrame, HandshakeRefused | PeerClosed> => {
      if (inbound === "closed" || inbound === "killed") return Effect.fail(peerClosed)
      if (inbound === "expired") return Effect.fail(timedOut)
      const decoded = Codec.decodeClientFrame(inbound as Codec.RawMessage, config.maxFrameBytes)
      return Either.isLeft(decoded) ? refuse(Errors.malformed(decoded.left.detail)) : Effect.succeed(decoded.right)
    }
  )
  // SPEC §2.6 step 5 (the handle), moved before any write (G-18), once possession is proven.
  const checkHandle = (hello: Frames.ClientFrameOf<"hello">) =>
    Effect.suspend(() => {
      const problem = Validate.validateClientFrame(hello)
      return Either.isLeft(problem) ? refuse(Errors.malformed(problem.left.detail)) : Effect.void
    })

  return Effect.gen(function*() {
    const hello = yield* nextFrame
    if (hello.type !== "hello") return yield* refuse(Errors.malformed(Errors.Messages.expectedHello))
    if (hello.protocol_version !== Limits.PROTOCOL_VERSION) {
      return yield* refuse(Errors.versionMismatch(hello.protocol_version))
    }
    const nonce = Auth.randomNonce()
    if (!link.isClosed) link.ws.send(Codec.encodeFrame({ type: "challenge", nonce: Base64Url.encode(nonce) }))
    // D-3 (host) is checked with the signature, after the client's auth, so every refusal comes where
    // SPEC §2.6 puts auth failures.
    const second = yield* nextFrame
    if (second.type === "register") {
      if (!(yield* env.registerLimiter.attempt(peer.remoteAddress))) {
        return yield* refuse(Errors.rateLimited("too many registration attempts from this address", 60_000))
      }
      const auth = yield* nextFrame
      if (auth.type !== "auth") return yield* refuse(Errors.malformed(Errors.Messages.expectedAuthAfterRegister))
      if (auth.pubkey !== second.pubkey) return yield* refuse(Errors.unauthorized(Errors.Messages.authKeyMismatch))
      yield* check(hostProblem(env, peer, hello))
      yield* check(signatureProblem(peer, hello, nonce, auth))
      const nameProblem = Validate.validateClientFrame(second)
      if (Either.isLeft(nameProblem)) return yield* refuse(Errors.malformed(nameProblem.left.detail))
      yield* checkHandle(hello)
      const pin = env.admins.pinOf(second.username)
      if (pin !== undefined && pin !== second.pubkey) {
        return yield* refuse(Errors.unauthorized(Errors.Messages.usernameReserved(second.username)))
      }
      const now = DateTime.formatIso(DateTime.unsafeMake(yield* Clock.currentTimeMillis))
      yield* store.registerUser({ username: second.username, machine: second.machine, pubkey: second.pubkey, now })
        .pipe(
          Effect.catchTags({
            StoreConflict: (e) =>
              refuse(
                e.what === "pubkey"
                  ? Errors.malformed(Errors.Messages.keyAlreadyEnrolled)
                  : Errors.unauthorized(Errors.Messages.usernameTaken(second.username))
              ),
            StoreError: storeFailure("register")
          }),
          traced("register", () => ({ user: second.username, machine: second.machine }))
        )
      return { hello, user: second.username, machine: second.machine }
    }
    if (second.type === "auth") {
      yield* check(hostProblem(env, peer, hello))
      yield* check(signatureProblem(peer, hello, nonce, second))
      const machine = yield* store.findMachineByKey(second.pubkey).pipe(
        Effect.catchTag("StoreError", storeFailure("authenticate"))
      )
      if (Option.isNone(machine)) return yield* refuse(Errors.unauthorized(Errors.Messages.unknownKey))
      yield* checkHandle(hello)
      return { hello, user: machine.value.user, machine: machine.value.name }
    }
    return yield* refuse(Errors.malformed(Errors.Messages.expectedRegisterOrAuth))
  }).pipe(
    // A step that outlived the deadline (a slow store) is refused all the same.
    Effect.filterOrFail(() => !link.expired, () => timedOut)
  )
}
