/**
 * Why a connection or a request failed (SPEC §2.5–§2.7, D-26), and how each failure is told to a
 * person: the typed errors of `Connection`, re-exported there.
 *
 * @since 0.1.0
 */
import { Errors, type Frames } from "@conclave/protocol"
import * as Data from "effect/Data"

/** Renders a millisecond bound as the messages show it: `10s`, `150ms`. @since 0.1.0 @category rendering */
export const formatBound = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`)

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Dial + upgrade + handshake did not finish in time. @since 0.1.0 @category errors */
export class ConnectTimeout extends Data.TaggedError("ConnectTimeout")<{
  readonly url: string
  readonly timeoutMs: number
}> {
  override get message() {
    return `timed out after ${formatBound(this.timeoutMs)} connecting to \`${this.url}\``
  }
}

/** The dial, the upgrade or the handshake failed for a reason other than a refusal. @since 0.1.0 @category errors */
export class ConnectFailed extends Data.TaggedError("ConnectFailed")<{
  readonly url: string
  readonly cause: unknown
}> {
  override get message() {
    return `failed to connect to \`${this.url}\`: ${describe(this.cause)}`
  }
}

/** The server answered the handshake with an `error` frame. @since 0.1.0 @category errors */
export class AuthRejected extends Data.TaggedError("AuthRejected")<{
  readonly url: string
  readonly error: Frames.ProtocolError
  /** True when the attempt carried a `register` frame. */
  readonly registering: boolean
}> {
  override get message() {
    return `${this.registering ? "registration" : "authentication"} rejected: ${Errors.render(this.error)}`
  }
}

/**
 * The server behind `url` is already connected under `canonical` (same-server dedupe, SPEC §4.10.3).
 * Produced by an `onInstanceId` callback, never by `connect` itself.
 *
 * @since 0.1.0
 * @category errors
 */
export class DuplicateServer extends Data.TaggedError("DuplicateServer")<{
  readonly url: string
  readonly canonical: string
  readonly instanceId: string
}> {
  override get message() {
    return `\`${this.url}\` is the same server as \`${this.canonical}\`; target \`${this.canonical}\` instead`
  }
}

/** No reply arrived within the per-request bound. @since 0.1.0 @category errors */
export class ResponseTimeout extends Data.TaggedError("ResponseTimeout")<{ readonly timeoutMs: number }> {
  override get message() {
    return `timed out after ${formatBound(this.timeoutMs)} waiting for a server response`
  }
}

/** The socket closed (or was already closed) before the reply arrived. @since 0.1.0 @category errors */
export class ConnectionLost extends Data.TaggedError("ConnectionLost")<Record<never, never>> {
  override get message() {
    return "connection closed before a response arrived"
  }
}

/** The server answered the request with an `error` frame. @since 0.1.0 @category errors */
export class Rejected extends Data.TaggedError("Rejected")<{ readonly error: Frames.ProtocolError }> {
  override get message() {
    return Errors.render(this.error)
  }
}

/** @since 0.1.0 @category errors */
export type ConnectError = ConnectTimeout | ConnectFailed | AuthRejected | DuplicateServer

/** @since 0.1.0 @category errors */
export type RequestError = ResponseTimeout | ConnectionLost | Rejected

/**
 * `server shutting down`, followed by the server's reason only when it says more than that.
 *
 * @since 0.1.0
 * @category rendering
 */
export const shuttingDownText = (reason: string): string =>
  reason === "" || reason === "server shutting down" ? "server shutting down" : `server shutting down: ${reason}`

/**
 * What to do about a failed connect, when there is something to say (issue 23): an unknown key
 * (never registered, or a server that forgot it), a server that is not there.
 *
 * @since 0.1.0
 * @category errors
 */
export const fixFor = (error: ConnectError): string | undefined => {
  if (
    error._tag === "AuthRejected" && !error.registering && error.error.kind === "unauthorized" &&
    error.error.message === Errors.Messages.unknownKey
  ) {
    return `the server at ${error.url} does not know this key: it was never registered there, or the server forgot it (a server started with --ephemeral forgets every registration when it restarts); run \`conclave register --server ${error.url} --username <you>\``
  }
  if (error._tag === "ConnectFailed") {
    const code = typeof error.cause === "object" && error.cause !== null && "code" in error.cause
      ? String(error.cause.code)
      : undefined
    if (code === "ECONNREFUSED") {
      return `nothing is listening at ${error.url}: start the server (\`conclave serve\`) or check the URL`
    }
    if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `the host of ${error.url} does not resolve: check the URL`
  }
  return undefined
}

/** WebSocket close codes that mean "the server is going away or restarting; come back later". */
const GOING_AWAY_CODES: ReadonlySet<number> = new Set([1001, 1012, 1013])

/**
 * The server closed the socket (or said `shutdown`) before the handshake finished: a server that is
 * shutting down or restarting, worth dialling again (issue 23, item 3).
 *
 * @since 0.1.0
 * @category errors
 */
export class ClosedDuringHandshake extends Data.TaggedError("ClosedDuringHandshake")<{
  readonly phase: "upgrade" | "handshake"
  readonly code: number | null
  readonly reason?: string
}> {
  override get message() {
    if (this.reason !== undefined) return shuttingDownText(this.reason)
    return `connection closed during the ${this.phase} (code ${this.code})`
  }
}

/**
 * True when a connect attempt failed because the server was shutting down or restarting (a close
 * with 1001/1012/1013 or a \`shutdown\` frame during the handshake): retrying is the right answer.
 *
 * @since 0.1.0
 * @category errors
 */
export const isServerGoingAway = (error: ConnectError): boolean =>
  error._tag === "ConnectFailed" && error.cause instanceof ClosedDuringHandshake &&
  (error.cause.reason !== undefined || (error.cause.code !== null && GOING_AWAY_CODES.has(error.cause.code)))
