/**
 * Fan-out between hub instances (DECISIONS D-20, D-42). Channel fan-out and whispers are published
 * here, and so are the nodes' control messages (presence, live-state changes, `Cluster`: each node
 * then sends the notices to its own sessions); each hub instance subscribes one local deliverer. The
 * default `layerMemory` delivers in-process, synchronously, so a frame is encoded once and handed
 * to every local socket in a plain loop. `NatsBroker.layer` is the distributed one (D-41, D-42).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Control } from "./Cluster.js"

/**
 * An already-encoded frame addressed to a channel's subscribers or to one session, or a control
 * message between the nodes of a deployment (presence leases, live-state changes, D-42).
 *
 * @since 0.1.0
 * @category models
 */
export type Envelope =
  | {
    readonly _tag: "Channel"
    readonly channel: string
    /** The frame text, encoded once. */
    readonly frame: string
    /** Rendered session path excluded from the fan-out (the sender), or null. */
    readonly exclude: string | null
  }
  | {
    readonly _tag: "Session"
    /** Rendered session path of the one recipient. */
    readonly path: string
    readonly frame: string
  }
  | Control

/** A local deliverer; it must not block and must not throw. @since 0.1.0 @category models */
export type Deliver = (envelope: Envelope) => void

/** @since 0.1.0 @category models */
export interface BrokerShape {
  /**
   * Hand an envelope to every subscribed deliverer, on this node at once and (for a distributed
   * broker) on the others. It never waits for a remote peer — a distributed broker queues the
   * envelope and sends it in the background, as NATS clients do — so it is a plain call: the fan-out
   * of a post or a whisper adds no effect step to the request that makes it.
   */
  readonly publish: (envelope: Envelope) => void
  /** Receive every published envelope for the lifetime of the scope. */
  readonly subscribe: (deliver: Deliver) => Effect.Effect<void, never, Scope.Scope>
  /** Which broker this is and whether it can reach its peers now (for `GET /health` and `/status`, D-41). */
  readonly status: Effect.Effect<BrokerStatus>
}

/** @since 0.1.0 @category models */
export interface BrokerStatus {
  readonly kind: "memory" | "nats"
  readonly ok: boolean
}

/** @since 0.1.0 @category tags */
export class Broker extends Context.Tag("@conclave/server/Broker")<Broker, BrokerShape>() {}

const memoryStatus: BrokerStatus = { kind: "memory", ok: true }

/** An in-process broker. @since 0.1.0 @category constructors */
export const makeMemory: Effect.Effect<BrokerShape> = Effect.sync(() => {
  const deliverers = new Set<Deliver>()
  return {
    publish: (envelope) => {
      for (const deliver of deliverers) deliver(envelope)
    },
    subscribe: (deliver) =>
      Effect.acquireRelease(
        Effect.sync(() => deliverers.add(deliver)),
        () => Effect.sync(() => deliverers.delete(deliver))
      ).pipe(Effect.asVoid),
    status: Effect.succeed(memoryStatus)
  }
})

/** The in-process default (one server process). @since 0.1.0 @category layers */
export const layerMemory: Layer.Layer<Broker> = Layer.effect(Broker, makeMemory)
