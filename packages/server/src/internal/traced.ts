/**
 * A span around request handling that costs nothing while tracing is off: `withSpan` costs about
 * 10 µs per request even when its spans go nowhere (`conclave serve` turns tracing off unless an
 * exporter is configured). The effect is the same either way; only what is recorded differs (D-40).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"

export const traced =
  (name: string, attributes: () => Record<string, unknown>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      FiberRef.get(FiberRef.currentTracerEnabled),
      (on) => on ? Effect.withSpan(effect, name, { captureStackTrace: false, attributes: attributes() }) : effect
    )
