/**
 * Console enrollment (D-51): an established session creates a single-use code, valid 10 minutes;
 * a browser redeems it in the handshake (`hello` → `challenge` → `enroll` + `auth`), proving
 * possession of its new key with the `auth` signature, and is enrolled as the next `browser-N`
 * machine of the code's user. A key is bound to at most one user (the store's uniqueness on keys).
 *
 * Codes live in the `Store` (only their SHA-256), so a code issued by one node of a deployment is
 * redeemed on any other node sharing the store (D-42), and a redeem is single-use across nodes.
 *
 * @since 0.1.0
 */
import { Auth, Errors, type Frames } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Handshake from "./Handshake.js"
import type { Link } from "./Link.js"
import { ServerConfig } from "./ServerConfig.js"
import { Store, type StoreError, type StoreShape } from "./Store.js"

/** Unredeemed codes one user may hold at once. @since 0.1.0 @category constants */
export const MAX_OUTSTANDING_PER_USER = 16

/** Why a code cannot be redeemed. @since 0.1.0 @category models */
export type RedeemFailure = "unknown" | "expired" | "used"

/** The machine names a console enrolls as: `browser-1`, `browser-2`, … @since 0.1.0 @category naming */
export const BROWSER_MACHINE = /^browser-(\d{1,9})$/

/** The next free `browser-N` among a user's machine names. @since 0.1.0 @category naming */
export const nextBrowserName = (names: ReadonlyArray<string>): string => {
  let max = 0
  for (const name of names) {
    const match = BROWSER_MACHINE.exec(name)
    if (match !== null) max = Math.max(max, Number(match[1]))
  }
  return `browser-${max + 1}`
}

/**
 * Console enrollment codes, kept in the store. Used and expired codes are remembered for 10 minutes
 * after their expiry (`ENROLL_CODE_KEPT_MS`), so a second try is told "already used" or "expired"
 * rather than "not found"; later they are purged (on each create and by the retention sweep).
 *
 * @since 0.1.0
 * @category services
 */
export class Enrollments extends Effect.Service<Enrollments>()("@conclave/server/Enrollments", {
  effect: Effect.gen(function*() {
    const config = yield* ServerConfig
    const store = yield* Store
    const ttlMs = Duration.toMillis(config.enrollCodeTtl)

    /** A fresh code for `user`, or a refusal past `MAX_OUTSTANDING_PER_USER` unredeemed codes. */
    const create = (
      user: string
    ): Effect.Effect<Frames.ServerFrameOf<"enrollment">, Errors.ProtocolFailure | StoreError> =>
      Effect.gen(function*() {
        const nowMs = yield* Clock.currentTimeMillis
        const code = yield* Effect.sync(() => Auth.randomToken())
        const expiresAtMs = nowMs + ttlMs
        const created = yield* store.createEnrollCode({
          code,
          user,
          nowMs,
          expiresAtMs,
          maxOutstanding: MAX_OUTSTANDING_PER_USER
        })
        if (created._tag === "Capped") {
          return yield* new Errors.ProtocolFailure({
            error: Errors.rateLimited(Errors.Messages.enrollCodesOutstanding(created.outstanding), ttlMs)
          })
        }
        return {
          type: "enrollment" as const,
          code,
          expires_at: DateTime.formatIso(DateTime.unsafeMake(expiresAtMs))
        }
      })

    /** Take the code (single use, across every node on the store): its user, or why not. */
    const take = (code: string): Effect.Effect<Either.Either<string, RedeemFailure>, StoreError> =>
      Effect.flatMap(Clock.currentTimeMillis, (nowMs) => store.redeemEnrollCode({ code, nowMs })).pipe(
        Effect.map((redeemed) =>
          redeemed._tag === "Redeemed" ? Either.right(redeemed.user) : Either.left(redeemed.reason)
        )
      )

    /** Give a taken code back (the enrollment failed after taking it, e.g. a store failure). */
    const release = (code: string): Effect.Effect<void> =>
      store.releaseEnrollCode(code).pipe(
        Effect.catchAll((e) =>
          Effect.logWarning("enrollment code not given back").pipe(Effect.annotateLogs({ cause: String(e.cause) }))
        )
      )

    return { create, take, release } as const
  })
}) {}

const failureMessage = (failure: RedeemFailure): string =>
  failure === "unknown"
    ? Errors.Messages.enrollCodeUnknown
    : failure === "expired"
    ? Errors.Messages.enrollCodeExpired
    : Errors.Messages.enrollCodeUsed

const refuse = (error: Frames.ProtocolError) => Effect.fail(new Handshake.HandshakeRefused({ error }))

/** Attempts at a free `browser-N` name when another enrollment of the same user takes it first. */
const NAME_ATTEMPTS = 4

/**
 * The handshake's last step after `enroll` + `auth` (D-51): the host and the signature as for any
 * handshake (possession of the new key), the key not enrolled anywhere yet, then the code taken and
 * the key added as the user's next `browser-N` machine.
 *
 * @since 0.1.0
 * @category handshake
 */
export const complete = (enrollments: Enrollments, store: StoreShape): Handshake.EnrollStep =>
(
  env,
  peer,
  link: Link,
  hello,
  nonce,
  enroll,
  auth
) => {
  // A failed enrollment (a wrong code, a bad signature) costs its address one of its handshake
  // failures (issue 22): codes cannot be guessed at leisure.
  const charged = <A>(effect: Effect.Effect<A, Handshake.HandshakeRefused>) =>
    Effect.tapError(effect, () => Effect.sync(() => env.registerLimiter.charge(peer.remoteAddress)))
  if (auth.pubkey !== enroll.pubkey) return charged(refuse(Errors.unauthorized(Errors.Messages.authKeyMismatch)))
  const problem = Handshake.checkProof(env, hello, nonce, auth)
  if (problem !== undefined) return charged(refuse(problem))
  const storeFailure = Handshake.storeFailure("enroll", peer)
  return charged(Effect.gen(function*() {
    const enrolled = yield* Effect.catchTag(store.findMachineByKey(enroll.pubkey), "StoreError", storeFailure)
    if (Option.isSome(enrolled)) return yield* refuse(Errors.malformed(Errors.Messages.keyAlreadyEnrolled))
    const taken = yield* Effect.catchTag(enrollments.take(enroll.code), "StoreError", storeFailure)
    if (Either.isLeft(taken)) return yield* refuse(Errors.unauthorized(failureMessage(taken.left)))
    const user = taken.right
    const now = DateTime.formatIso(DateTime.unsafeMake(yield* Clock.currentTimeMillis))
    const addNext = (attempt: number): Effect.Effect<string, Handshake.HandshakeRefused> =>
      Effect.catchTag(store.listMachines(user), "StoreError", storeFailure).pipe(
        Effect.flatMap((rows) => {
          const name = nextBrowserName(rows.map((r) => r.name))
          return store.addMachine({ user, name, pubkey: enroll.pubkey, now }).pipe(
            Effect.as(name),
            Effect.catchTags({
              StoreError: storeFailure,
              StoreConflict: (e) =>
                e.what === "machine" && attempt < NAME_ATTEMPTS
                  ? addNext(attempt + 1)
                  : refuse(Errors.malformed(Errors.Messages.keyAlreadyEnrolled))
            })
          )
        })
      )
    const machine = yield* addNext(1).pipe(Effect.tapError(() => enrollments.release(enroll.code)))
    yield* Effect.logInfo("console enrolled").pipe(Effect.annotateLogs({ user, machine }))
    if (link.expired) return yield* refuse(Errors.unauthorized(Errors.Messages.handshakeTimedOut))
    return { hello, user, machine } satisfies Handshake.Authenticated
  }))
}
