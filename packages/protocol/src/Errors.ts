/**
 * Protocol error constructors, the canonical rendering (SPEC §2.5) and the typed failure that carries
 * a wire error through Effect's error channel.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ProtocolError } from "./Frames.js"
import { PROTOCOL_VERSION } from "./Limits.js"

/**
 * A request refused with a wire error. It is a `Schema.TaggedError` so it can cross process
 * boundaries; the server turns it into an `error` frame that echoes the request id.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolFailure extends Schema.TaggedError<ProtocolFailure>()("ProtocolFailure", {
  error: ProtocolError
}) {
  override get message(): string {
    return render(this.error)
  }
}

/** Render as the bridge and CLI show it (tests match substrings of this). @since 0.1.0 @category rendering */
export const render = (error: ProtocolError): string => {
  switch (error.kind) {
    case "version_mismatch":
      return `incompatible protocol version: ours=${error.ours}, theirs=${error.theirs}`
    case "malformed_frame":
      return `malformed frame: ${error.message}`
    case "unauthorized":
      return `unauthorized: ${error.message}`
    case "not_found":
      return `not found: ${error.message}`
    case "internal":
      return `internal error: ${error.message}`
    case "conflict":
      return `conflict: ${error.message}`
    case "rate_limited":
      return `rate limited: ${error.message} (retry after ${error.retry_after_ms} ms)`
    case "too_large":
      return `too large: ${error.message}`
    case "unavailable":
      return `unavailable: ${error.message} (retry after ${error.retry_after_ms} ms)`
  }
}

/** @since 0.1.0 @category constructors */
export const versionMismatch = (theirs: number): ProtocolError => ({
  kind: "version_mismatch",
  ours: PROTOCOL_VERSION,
  theirs
})
/** @since 0.1.0 @category constructors */
export const malformed = (message: string): ProtocolError => ({ kind: "malformed_frame", message })
/** @since 0.1.0 @category constructors */
export const unauthorized = (message: string): ProtocolError => ({ kind: "unauthorized", message })
/** @since 0.1.0 @category constructors */
export const notFound = (message: string): ProtocolError => ({ kind: "not_found", message })
/** @since 0.1.0 @category constructors */
export const internal = (message: string): ProtocolError => ({ kind: "internal", message })
/** @since 0.1.0 @category constructors */
export const conflict = (message: string): ProtocolError => ({ kind: "conflict", message })
/** @since 0.1.0 @category constructors */
export const rateLimited = (message: string, retryAfterMs: number): ProtocolError => ({
  kind: "rate_limited",
  message,
  retry_after_ms: Math.max(0, Math.ceil(retryAfterMs))
})
/** A backend is out of reach: nothing was done, retry after the delay (D-42). @since 0.1.0 @category constructors */
export const unavailable = (message: string, retryAfterMs: number): ProtocolError => ({
  kind: "unavailable",
  message,
  retry_after_ms: Math.max(0, Math.ceil(retryAfterMs))
})
/** @since 0.1.0 @category constructors */
export const tooLarge = (message: string, limit: number): ProtocolError => ({ kind: "too_large", message, limit })

/** The exact texts the spec names (SPEC §2.5, §2.6, D-16). @since 0.1.0 @category messages */
export const Messages = {
  expectedHello: "expected Hello",
  expectedRegisterOrAuth: "expected Register or Auth",
  expectedAuthAfterRegister: "expected Auth after Register",
  authKeyMismatch: "auth key does not match the registered key",
  unknownKey: "unknown machine key",
  keyOffered: (user: string, machine: string) =>
    `unknown machine key: it is offered as machine \`${machine}\` of \`${user}\`; accept with \`conclave register --username ${user} --machine ${machine}\` on the machine that holds it`,
  badSignature: "signature verification failed",
  keyAlreadyEnrolled: "malformed key or signature: public key is already enrolled",
  keyEnrolledAs: (u: string) =>
    `malformed key or signature: public key is already enrolled: this key is registered as \`${u}\``,
  handshakeTimedOut: "handshake timed out",
  tooManyHandshakeFailures: "too many failed handshakes from this address",
  unexpectedFrame: "unexpected frame from client",
  adminRequired: "not authorized: admin role required",
  inviteExpiryTooFar: "invite expiry is too far in the future",
  usernameTaken: (u: string) => `username \`${u}\` is already taken`,
  usernameReserved: (u: string) => `username \`${u}\` is reserved for a different key`,
  notAMember: (c: string) => `not a member of channel \`${c}\``,
  channelNotFound: (c: string) => `channel \`${c}\` not found`,
  banned: (c: string) => `you are banned from channel \`${c}\``,
  notOnline: (path: string) => `session \`${path}\` is not online`,
  invalidUsername: (u: string) => `invalid username: \`${u}\``,
  invalidMachine: (m: string) => `invalid machine name: \`${m}\``,
  invalidHandle: (h: string) => `invalid session handle: \`${h}\``,
  invalidChannel: (c: string) => `invalid channel name: \`${c}\``,
  channelExists: (c: string) => `channel \`${c}\` already exists`,
  storageFailure: (operation: string) => `storage failure during ${operation}`,
  expectedAuthAfterEnroll: "expected Auth after Enroll",
  enrollCodeUnknown: "enrollment code not found: ask for a new link with `conclave console`",
  enrollCodeExpired: "enrollment code expired: ask for a new link with `conclave console`",
  enrollCodeUsed: "enrollment code already used: ask for a new link with `conclave console`",
  enrollCodesOutstanding: (n: number) => `too many unredeemed enrollment codes (${n}); let one expire first`
} as const

/** Kill reasons sent as the final `unauthorized` error of a force-dropped session (SPEC §3.3). @since 0.1.0 @category messages */
export const KillReasons = {
  superseded: "session superseded by a newer connection for the same session path",
  idle: "idle timeout: no heartbeat",
  machineRevoked: "machine key revoked",
  userRemoved: "user removed from this server",
  slowConsumer: "slow consumer: outbound queue overflowed",
  terminated: "session terminated"
} as const
