/**
 * The handshake (SPEC §2.6, DECISIONS D-3, D-8, D-10, G-18): `hello` → `challenge` → `register`
 * + `auth` or `auth`, proven by an Ed25519 signature over the challenge, bound to the host the
 * server answers as. One implementation: its frames are plain state transitions in the socket's
 * callbacks (`machine`), and its last step — the one with effects: signature, store, registration —
 * runs in one fiber. Every refusal is a `HandshakeRefused` carrying the error frame to send before
 * closing.
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, Errors, type Frames, Limits, Validate } from "@conclave/protocol"
import type * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Admins from "./Admins.js"
import type { Authorities } from "./internal/authorities.js"
import { traced } from "./internal/traced.js"
import type { Link } from "./Link.js"
import type { RegisterLimiter } from "./RateLimit.js"
import type { ServerConfigShape } from "./ServerConfig.js"
import { isUnavailable, type StoreError, type StoreShape, UNAVAILABLE_RETRY_MS } from "./Store.js"

/** The handshake was refused: send `error`, then close (1008). @since 0.1.0 @category errors */
export class HandshakeRefused extends Data.TaggedError("HandshakeRefused")<{ readonly error: Frames.ProtocolError }> {}

/** The peer left during the handshake: nothing to answer. @since 0.1.0 @category errors */
export class PeerClosed extends Data.TaggedError("PeerClosed") {}

// One instance: it carries nothing, and building an Error (its stack) per closed connection showed in
// the handshake profile.
const peerClosed = new PeerClosed()

/**
 * What `machine` answers when the peer left mid-handshake: always this one value, so the caller can
 * finish such a connection without running an effect (a flood of sockets that connect and go is
 * answered without a fiber each).
 *
 * @since 0.1.0
 * @category handshake
 */
export const peerLeft: Effect.Effect<never, PeerClosed> = Effect.fail(peerClosed)

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
  readonly clock: Clock.Clock
  /**
   * The authorities this server answers as (D-3): the public URLs', then the listener's address and
   * its aliases — from the configuration, never from a request's `Host` header.
   */
  readonly authorities: Authorities
  /** The last step after `enroll` + `auth` (D-51, `Enrollments`); without it `enroll` is refused. */
  readonly enroll?: EnrollStep | undefined
}

/**
 * The last step of a console enrollment (D-51): after `enroll` and the `auth` that proves possession.
 *
 * @since 0.1.0
 * @category models
 */
export type EnrollStep = (
  env: HandshakeEnv,
  peer: Peer,
  link: Link,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  enroll: Frames.ClientFrameOf<"enroll">,
  auth: Frames.ClientFrameOf<"auth">
) => Effect.Effect<Authenticated, HandshakeRefused>

/** @since 0.1.0 @category constructors */
export const makeEnv = (
  input: Pick<HandshakeEnv, "config" | "store" | "registerLimiter" | "clock" | "authorities" | "enroll">
): HandshakeEnv => ({ ...input, admins: Admins.allowlist(input.config.admins) })

/** What the transport knows about the connection. @since 0.1.0 @category models */
export interface Peer {
  readonly remoteAddress: string
}

const refuse = (error: Frames.ProtocolError) => Effect.fail(new HandshakeRefused({ error }))

/** D-3: `hello.host` must be an authority this server answers as; the refusal, or `undefined`. */
const hostProblem = (env: HandshakeEnv, hello: Frames.ClientFrameOf<"hello">): Frames.ProtocolError | undefined => {
  if (hello.host === null) return undefined
  const all = env.authorities.all()
  if (all.includes(hello.host.toLowerCase())) return undefined
  const answersAs = all.length === 0 ? "no configured address" : all.map((h) => `\`${h}\``).join(" or ")
  return Errors.unauthorized(`signed for host \`${hello.host}\` but this server answers as ${answersAs}`)
}

/**
 * The signature over the challenge, for `hello.host` — or, when a client names no host, for one of
 * the server's own authorities; the refusal, or `undefined` when it verifies.
 */
const signatureProblem = (
  env: HandshakeEnv,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  auth: Frames.ClientFrameOf<"auth">
): Frames.ProtocolError | undefined => {
  const key = Base64Url.decode(auth.pubkey) ?? new Uint8Array()
  const sig = Base64Url.decode(auth.signature) ?? new Uint8Array()
  const hosts = hello.host !== null ? [hello.host] : env.authorities.all()
  let failure: Frames.ProtocolError = Errors.unauthorized("signature verification failed")
  for (const host of hosts) {
    const verified = Auth.verify(key, Auth.authMessage(host, hello.session, nonce), sig)
    if (Either.isRight(verified)) return undefined
    if (verified.left._tag === "MalformedKey") return Errors.malformed(verified.left.message)
    failure = Errors.unauthorized(verified.left.message)
  }
  return failure
}

/**
 * The checks every signed handshake passes (D-3, SPEC §2.6, G-18): the host, the signature over the
 * challenge, then the handle; the refusal, or `undefined`.
 *
 * @since 0.1.0
 * @category handshake
 */
export const checkProof = (
  env: HandshakeEnv,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  auth: Frames.ClientFrameOf<"auth">
): Frames.ProtocolError | undefined => {
  const problem = hostProblem(env, hello) ?? signatureProblem(env, hello, nonce, auth)
  if (problem !== undefined) return problem
  const handle = Validate.validateClientFrame(hello)
  return Either.isLeft(handle) ? Errors.malformed(handle.left.detail) : undefined
}

const timedOut = new HandshakeRefused({ error: Errors.unauthorized(Errors.Messages.handshakeTimedOut) })

// The refusals of an out-of-order frame quote nothing of it: one value each, not an Error (and its
// stack) per refused socket of a flood.
const outOfOrder = (message: string) => Effect.fail(new HandshakeRefused({ error: Errors.malformed(message) }))
const notHello = outOfOrder(Errors.Messages.expectedHello)
const notAuthAfterRegister = outOfOrder(Errors.Messages.expectedAuthAfterRegister)
const notAuthAfterEnroll = outOfOrder(Errors.Messages.expectedAuthAfterEnroll)
const notRegisterOrAuth = outOfOrder(Errors.Messages.expectedRegisterOrAuth)

/** A store failure during the handshake, logged and refused. @since 0.1.0 @category handshake */
export const storeFailure = (operation: string, peer: Peer) => (e: StoreError) =>
  Effect.logWarning("store failure").pipe(
    Effect.annotateLogs({ operation, cause: String(e.cause), remote: peer.remoteAddress }),
    Effect.zipRight(refuse(
      isUnavailable(e)
        ? Errors.unavailable(`the store is unreachable during ${operation}`, UNAVAILABLE_RETRY_MS)
        : Errors.internal(Errors.Messages.storageFailure(operation))
    ))
  )

/**
 * The handshake's steps as plain state transitions over the link's frames (run in the socket's
 * callbacks: nothing here waits), up to the one step that needs effects — the proof of possession,
 * the store, a registration. Call the returned function whenever the link has news: it answers
 * `undefined` while the handshake waits for more frames, then once with the effect that completes it
 * (the verification of `auth`), refuses it, or reports that the peer left. A step still running when
 * the deadline passes (a slow store) is refused once it ends.
 *
 * @since 0.1.0
 * @category handshake
 */
export const machine = (
  env: HandshakeEnv,
  link: Link,
  peer: Peer
): () => Effect.Effect<Authenticated, HandshakeRefused | PeerClosed> | undefined => {
  const preauthMaxBytes = Math.min(env.config.maxFrameBytes, Limits.PREAUTH_MAX_FRAME_BYTES)
  let hello: Frames.ClientFrameOf<"hello"> | undefined
  let nonce: Uint8Array = new Uint8Array()
  let registering: Frames.ClientFrameOf<"register"> | undefined
  let enrolling: Frames.ClientFrameOf<"enroll"> | undefined
  return () => {
    while (true) {
      const inbound = link.poll()
      if (inbound === undefined) return undefined
      if (inbound === "closed" || inbound === "killed") return peerLeft
      if (inbound === "expired") return Effect.fail(timedOut)
      // Before establishment every frame is tiny: a large one is refused before it is parsed.
      const decoded = Codec.decodeClientFrame(inbound as Codec.RawMessage, preauthMaxBytes)
      if (Either.isLeft(decoded)) return refuse(Errors.malformed(decoded.left.detail))
      const frame = decoded.right
      if (hello === undefined) {
        if (frame.type !== "hello") return notHello
        if (frame.protocol_version !== Limits.PROTOCOL_VERSION) {
          return refuse(Errors.versionMismatch(frame.protocol_version))
        }
        hello = frame
        nonce = Auth.randomNonce()
        if (!link.isClosed) link.ws.send(Codec.encodeFrame({ type: "challenge", nonce: Base64Url.encode(nonce) }))
        continue
      }
      if (registering !== undefined) {
        if (frame.type !== "auth") return notAuthAfterRegister
        return verify(env, peer, link, hello, nonce, registering, frame)
      }
      if (enrolling !== undefined && env.enroll !== undefined) {
        if (frame.type !== "auth") return notAuthAfterEnroll
        return env.enroll(env, peer, link, hello, nonce, enrolling, frame)
      }
      if (frame.type === "enroll" && env.enroll !== undefined) {
        // a new key: refused while the address is over the cap of costly failures (issue 22); a
        // failed enrollment is charged by the enrollment step
        const retryAfter = env.registerLimiter.blocked(peer.remoteAddress)
        if (retryAfter !== undefined) {
          return refuse(Errors.rateLimited(Errors.Messages.tooManyHandshakeFailures, retryAfter))
        }
        enrolling = frame
        continue
      }
      if (frame.type === "register") {
        // counted once its signature is checked, not here (issue 22)
        registering = frame
        continue
      }
      if (frame.type === "auth") return verify(env, peer, link, hello, nonce, undefined, frame)
      return notRegisterOrAuth
    }
  }
}

/**
 * The last step: D-3 (host) and the signature over the challenge, checked after the client's `auth`
 * so every refusal comes where SPEC §2.6 puts auth failures; then the registration or the key's
 * machine — the one step with effects; SPEC §2.6 step 5 (the handle) once possession is proven
 * (G-18). The checks are plain code: the effect is the store's.
 */
const verify = (
  env: HandshakeEnv,
  peer: Peer,
  link: Link,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  register: Frames.ClientFrameOf<"register"> | undefined,
  auth: Frames.ClientFrameOf<"auth">
): Effect.Effect<Authenticated, HandshakeRefused> => {
  const retryAfter = env.registerLimiter.blocked(peer.remoteAddress)
  if (retryAfter === undefined) return verifyAndCharge(env, peer, link, hello, nonce, register, auth)
  // Over the per-address cap: a key already enrolled is let through (the users behind one proxy or
  // NAT are not locked out by a stranger's failures); anything else is refused before it costs a
  // signature check.
  return env.store.findMachineByKey(auth.pubkey).pipe(
    Effect.catchTag("StoreError", storeFailure("authenticate", peer)),
    Effect.flatMap((enrolled) =>
      Option.isSome(enrolled)
        ? verifyAndCharge(env, peer, link, hello, nonce, register, auth)
        : refuse(Errors.rateLimited(Errors.Messages.tooManyHandshakeFailures, retryAfter))
    )
  )
}

/** `verifyOnce`, charging the address for a signature verified bad or a user created. */
const verifyAndCharge = (
  env: HandshakeEnv,
  peer: Peer,
  link: Link,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  register: Frames.ClientFrameOf<"register"> | undefined,
  auth: Frames.ClientFrameOf<"auth">
): Effect.Effect<Authenticated, HandshakeRefused> =>
  verifyOnce(env, peer, link, hello, nonce, register, auth, () => env.registerLimiter.charge(peer.remoteAddress))

const verifyOnce = (
  env: HandshakeEnv,
  peer: Peer,
  link: Link,
  hello: Frames.ClientFrameOf<"hello">,
  nonce: Uint8Array,
  register: Frames.ClientFrameOf<"register"> | undefined,
  auth: Frames.ClientFrameOf<"auth">,
  charge: () => void
): Effect.Effect<Authenticated, HandshakeRefused> => {
  const handleProblem = (): Frames.ProtocolError | undefined => {
    const problem = Validate.validateClientFrame(hello)
    return Either.isLeft(problem) ? Errors.malformed(problem.left.detail) : undefined
  }
  // A step that outlived the deadline (a slow store) is refused all the same.
  const inTime = (authenticated: Authenticated) => link.expired ? Effect.fail(timedOut) : Effect.succeed(authenticated)
  const signed = (): Frames.ProtocolError | undefined => {
    const problem = signatureProblem(env, hello, nonce, auth)
    if (problem !== undefined) charge()
    return problem
  }
  if (register === undefined) {
    const problem = hostProblem(env, hello) ?? signed()
    if (problem !== undefined) return refuse(problem)
    return env.store.findMachineByKey(auth.pubkey).pipe(
      Effect.catchTag("StoreError", storeFailure("authenticate", peer)),
      Effect.flatMap((machine) => {
        if (Option.isNone(machine)) {
          // an offered key is accepted by registering, never by plain auth (issue 22): say how
          return env.store.findOfferByKey(auth.pubkey).pipe(
            Effect.catchTag("StoreError", storeFailure("authenticate", peer)),
            Effect.flatMap((offer) =>
              refuse(Errors.unauthorized(
                Option.isSome(offer)
                  ? Errors.Messages.keyOffered(offer.value.user, offer.value.name)
                  : Errors.Messages.unknownKey
              ))
            )
          )
        }
        const problem = handleProblem()
        return problem !== undefined
          ? refuse(problem)
          : inTime({ hello, user: machine.value.user, machine: machine.value.name })
      })
    )
  }
  const { machine, pubkey, username } = register
  const nameProblem = Validate.validateClientFrame(register)
  const pin = env.admins.pinOf(username)
  const problem = auth.pubkey !== pubkey
    ? Errors.unauthorized(Errors.Messages.authKeyMismatch)
    : hostProblem(env, hello) ?? signed() ??
      (Either.isLeft(nameProblem) ? Errors.malformed(nameProblem.left.detail) : undefined) ?? handleProblem() ??
      (pin !== undefined && pin !== pubkey
        ? Errors.unauthorized(Errors.Messages.usernameReserved(username))
        : undefined)
  if (problem !== undefined) return refuse(problem)
  return Effect.suspend(() =>
    env.store.registerUser({
      username,
      machine,
      pubkey,
      now: DateTime.formatIso(DateTime.unsafeMake(env.clock.unsafeCurrentTimeMillis()))
    })
  ).pipe(
    // a new user costs the server rows: it counts against the address (D-10)
    Effect.tap(() => Effect.sync(charge)),
    Effect.as(machine),
    // Re-registering one's own name with one's own key is an idempotent success (issue 23): the
    // session is the key's existing machine. A key enrolled under another name says which.
    // A taken name may have offered this key this machine (`machine_add`, issue 22): registering as
    // that user/machine accepts the offer — the key's holder consents and proves possession here.
    Effect.catchTag("StoreConflict", (e) =>
      e.what !== "username" ? Effect.fail(e) : env.store.claimMachine({
        user: username,
        name: machine,
        pubkey,
        now: DateTime.formatIso(DateTime.unsafeMake(env.clock.unsafeCurrentTimeMillis()))
      }).pipe(Effect.flatMap((claimed) => claimed ? Effect.succeed(machine) : Effect.fail(e)))),
    Effect.catchTag("StoreConflict", (e) =>
      env.store.findMachineByKey(pubkey).pipe(
        Effect.flatMap((enrolled) => {
          if (Option.isSome(enrolled) && enrolled.value.user === username) return Effect.succeed(enrolled.value.name)
          if (Option.isSome(enrolled)) {
            return refuse(Errors.malformed(Errors.Messages.keyEnrolledAs(enrolled.value.user)))
          }
          return refuse(
            e.what === "pubkey"
              ? Errors.malformed(Errors.Messages.keyAlreadyEnrolled)
              : Errors.unauthorized(Errors.Messages.usernameTaken(username))
          )
        })
      )),
    Effect.catchTag("StoreError", storeFailure("register", peer)),
    traced("register", () => ({ user: username, machine })),
    Effect.flatMap((registered) => inTime({ hello, user: username, machine: registered }))
  )
}
