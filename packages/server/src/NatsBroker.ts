/**
 * The `Broker` over Core NATS (D-41 `--broker nats://host:port`, D-42): live fan-out between the
 * nodes of one deployment. Nothing here is durable: an envelope that no node received while NATS
 * was away is gone, and clients fill such gaps from the store by seq (D-22).
 *
 * Subjects: `<prefix>.ch.<channel>` and `<prefix>.s.<session path>`, each name as base64url of
 * its UTF-8 bytes without padding (`_` for the empty name), so every name is one valid subject
 * token; the nodes' control messages (presence leases, live-state changes, `Cluster`) on
 * `<prefix>.ctl`, one subject, so each node's control messages reach the others in order. For now a node subscribes to `<prefix>.ch.*` and `<prefix>.s.*` and its hub ignores what
 * it does not hold. The body is the envelope as JSON, decoded with Schema on arrival; a message
 * that does not decode, or whose subject does not match its envelope, is logged (subject and size,
 * never the body) and dropped.
 *
 * A node delivers what it publishes to its own deliverers at once, synchronously, as the memory
 * broker does, and its connection is opened with `noEcho`, so NATS never hands the node its own
 * envelopes back: every deliverer sees each envelope once, from whichever node it came.
 *
 * While NATS is unreachable the client reconnects forever (its fixed wait plus jitter); `status`
 * reports `ok: false`, local delivery goes on, and envelopes for the other nodes are kept in a
 * bounded buffer (default 8 MiB of payload, as the Go client's reconnect buffer) and sent, in
 * order, once the connection is back; past the bound they are dropped and counted. The buffer is
 * the broker's own: the JavaScript client discards its outbound buffer at every (re)dial.
 *
 * @since 0.1.0
 */
import { connect } from "@nats-io/transport-node"
import type { Msg, NatsConnection, Status } from "@nats-io/transport-node"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { Broker, type BrokerShape, type BrokerStatus, type Deliver, type Envelope } from "./Broker.js"
import { Control } from "./Cluster.js"

/** The broker could not be opened: options it cannot use, or no NATS server reachable. @since 0.1.0 @category errors */
export class BrokerError extends Data.TaggedError("BrokerError")<{
  readonly reason: "InvalidOptions" | "Unreachable"
  /** Safe to log: no credentials, no message bodies. */
  readonly message: string
  readonly cause?: unknown
}> {}

/** @since 0.1.0 @category models */
export interface Options {
  /** `nats://host:port` (D-41). */
  readonly url: string
  /** Subject prefix, one or more dot-separated tokens of `[A-Za-z0-9_-]`; default `conclave`. */
  readonly prefix?: string
  /** Client name shown in the NATS server's monitoring. */
  readonly name?: string
  /** How long the first connection may take before the layer fails; default 5 s. */
  readonly connectTimeout?: Duration.DurationInput
  /** Wait between reconnect attempts (plus up to 100 ms of jitter); default 2 s. */
  readonly reconnectWait?: Duration.DurationInput
  /** Bytes of envelopes kept for the other nodes while NATS is unreachable; default 8 MiB. */
  readonly bufferBytes?: number
}

const ChannelWire = Schema.Struct({
  _tag: Schema.Literal("Channel"),
  channel: Schema.String,
  frame: Schema.String,
  exclude: Schema.NullOr(Schema.String)
})
const SessionWire = Schema.Struct({
  _tag: Schema.Literal("Session"),
  path: Schema.String,
  frame: Schema.String
})
const EnvelopeJson = Schema.parseJson(Schema.Union(ChannelWire, SessionWire, Control))
// Outgoing envelopes are typed already: encoding skips re-checking their shape (2 of the ~13 µs a
// publish costs); the receiving side, where bytes come from outside, decodes with the full schema.
const encodeEnvelope: (envelope: Envelope) => Either.Either<string, ParseResult.ParseError> = Schema.encodeEither(
  Schema.parseJson()
)
const decodeEnvelope = Schema.decodeUnknownEither(EnvelopeJson)

/** One subject token for any name: base64url of its UTF-8 bytes, `_` for the empty name. @since 0.1.0 @category subjects */
export const token = (name: string): string => name === "" ? "_" : Buffer.from(name, "utf8").toString("base64url")

/** The subject an envelope is published on. @since 0.1.0 @category subjects */
export const subject = (prefix: string, envelope: Envelope): string => {
  switch (envelope._tag) {
    case "Channel":
      return `${prefix}.ch.${token(envelope.channel)}`
    case "Session":
      return `${prefix}.s.${token(envelope.path)}`
    case "Control":
      return `${prefix}.ctl`
  }
}

const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** The URL without user information, for messages. */
const shown = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}`
  } catch {
    return "(an unparseable URL)"
  }
}

const natsStatus = (ok: boolean): BrokerStatus => ok ? okStatus : downStatus
const okStatus: BrokerStatus = { kind: "nats", ok: true }
const downStatus: BrokerStatus = { kind: "nats", ok: false }

/** A NATS broker for the lifetime of the scope; the connection is drained when it closes. @since 0.1.0 @category constructors */
export const make = Effect.fn("NatsBroker.make")(function*(options: Options) {
  const prefix = options.prefix ?? "conclave"
  if (!PREFIX.test(prefix)) {
    return yield* new BrokerError({
      reason: "InvalidOptions",
      message: "the NATS subject prefix is not a valid subject"
    })
  }
  if (!options.url.startsWith("nats://")) {
    return yield* new BrokerError({
      reason: "InvalidOptions",
      message: "the broker URL must have the form nats://host:port"
    })
  }
  const where = shown(options.url)
  const bufferLimit = options.bufferBytes ?? 8 * 1024 * 1024
  const run = yield* FiberSet.makeRuntime<never>()

  const deliverers = new Set<Deliver>()
  let connected = false
  let buffered: Array<{ readonly subject: string; readonly text: string }> = []
  let bufferedBytes = 0
  let dropped = 0

  const nc: NatsConnection = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        connect({
          servers: options.url,
          ...(options.name === undefined ? {} : { name: options.name }),
          noEcho: true,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: Duration.toMillis(options.reconnectWait ?? "2 seconds"),
          timeout: Duration.toMillis(options.connectTimeout ?? "5 seconds")
        }),
      catch: (cause) => new BrokerError({ reason: "Unreachable", message: `no NATS server at ${where}`, cause })
    }),
    (conn) =>
      Effect.tryPromise(() => conn.drain()).pipe(
        Effect.timeout("5 seconds"),
        Effect.catchAllCause((cause) =>
          Effect.logDebug("NATS drain did not complete; closing", cause).pipe(
            Effect.zipRight(Effect.promise(() => conn.close().catch(() => undefined)))
          )
        )
      )
  )

  const statuses = nc.status()[Symbol.asyncIterator]()

  const onMessage = (err: Error | null, msg: Msg): void => {
    if (err !== null) {
      run(Effect.logWarning("NATS subscription error", err.message))
      return
    }
    const decoded = decodeEnvelope(msg.string())
    if (Either.isLeft(decoded) || subject(prefix, decoded.right) !== msg.subject) {
      run(
        Effect.logWarning("dropped a broker message that is not an envelope for its subject").pipe(
          Effect.annotateLogs({ subject: msg.subject, bytes: msg.data.length })
        )
      )
      return
    }
    for (const deliver of deliverers) deliver(decoded.right)
  }
  nc.subscribe(`${prefix}.ch.*`, { callback: onMessage })
  nc.subscribe(`${prefix}.s.*`, { callback: onMessage })
  nc.subscribe(`${prefix}.ctl`, { callback: onMessage })
  yield* Effect.tryPromise({
    try: () => nc.flush(),
    catch: (cause) => new BrokerError({ reason: "Unreachable", message: `NATS at ${where} did not answer`, cause })
  })
  connected = true

  const sendNow = (to: string, text: string): void => {
    try {
      nc.publish(to, text)
    } catch (error) {
      run(
        Effect.logWarning("NATS refused an envelope; other nodes will not get it", error).pipe(
          Effect.annotateLogs({ subject: to, bytes: text.length })
        )
      )
    }
  }

  /**
   * Send what was buffered while NATS was away, in order, then publish directly again (what was
   * buffered meanwhile is sent first).
   */
  const resume = (resent: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (buffered.length === 0) {
        const lost = dropped
        bufferedBytes = 0
        dropped = 0
        connected = true
        return Effect.logInfo("NATS broker connected again").pipe(Effect.annotateLogs({ resent, dropped: lost }))
      }
      const pending = buffered
      buffered = []
      for (const { subject, text } of pending) sendNow(subject, text)
      return resume(resent + pending.length)
    })

  const onStatus = (status: Status): Effect.Effect<void> => {
    switch (status.type) {
      case "disconnect":
      case "staleConnection":
        connected = false
        return Effect.logWarning("NATS broker disconnected; envelopes for other nodes are buffered").pipe(
          Effect.annotateLogs({ event: status.type })
        )
      case "reconnect":
        // The flush returns once the server has the resubscriptions, so `ok` means deliverable. A
        // rejected flush means the connection dropped again (its disconnect event follows); one that
        // takes too long is no proof of a broken connection (pings would find one).
        return Effect.tryPromise(() => nc.flush()).pipe(
          Effect.either,
          Effect.timeoutTo({ duration: "5 seconds", onSuccess: Either.isRight, onTimeout: () => true }),
          Effect.flatMap((flushed) => flushed ? resume(0) : Effect.logDebug("NATS flush after reconnect failed"))
        )
      case "close":
        connected = false
        return Effect.logDebug("NATS connection closed")
      case "ldm":
        return Effect.logWarning("NATS server entering lame duck mode")
      case "error":
        return Effect.logWarning("NATS server error", status.error.message)
      default:
        return Effect.void
    }
  }
  // Read with plain `next()` calls: `Stream.fromAsyncIterable` would call the iterator's `return()`
  // on interruption, and an async generator waiting for its next event never answers that.
  const watch: Effect.Effect<void> = Effect.flatMap(
    Effect.promise(() => statuses.next()),
    (next) =>
      next.done === true ? Effect.void : Effect.zipRight(
        Effect.catchAllCause(onStatus(next.value), (cause) => Effect.logWarning("NATS status event failed", cause)),
        watch
      )
  )
  yield* watch.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("NATS status watch ended", cause)),
    Effect.forkScoped
  )

  const send = (to: string, text: string): void => {
    if (connected) return sendNow(to, text)
    if (bufferedBytes + text.length <= bufferLimit) {
      buffered.push({ subject: to, text })
      bufferedBytes += text.length
      return
    }
    dropped += 1
    if (dropped === 1) {
      run(Effect.logWarning("NATS broker buffer full; dropping envelopes for other nodes until NATS is back"))
    }
  }

  const broker: BrokerShape = {
    publish: (envelope) => {
      for (const deliver of deliverers) deliver(envelope)
      const text = encodeEnvelope(envelope)
      if (Either.isRight(text)) send(subject(prefix, envelope), text.right)
      else run(Effect.logWarning("an envelope could not be encoded for NATS; other nodes will not get it"))
    },
    subscribe: (deliver) =>
      Effect.acquireRelease(
        Effect.sync(() => deliverers.add(deliver)),
        () => Effect.sync(() => deliverers.delete(deliver))
      ).pipe(Effect.asVoid),
    status: Effect.sync(() => natsStatus(connected && !nc.isClosed()))
  }
  return broker
}, (effect) => Effect.annotateLogs(effect, { component: "NatsBroker" }))

/** The broker over NATS at `url` (D-41). @since 0.1.0 @category layers */
export const layer = (options: Options): Layer.Layer<Broker, BrokerError> => Layer.scoped(Broker, make(options))
