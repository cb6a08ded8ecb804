/**
 * Spans around request handling that cost nothing while tracing is off: `withSpan` costs about
 * 10 µs per request even when its spans go nowhere (`conclave serve` turns tracing off unless an
 * exporter is configured). The code that runs is the same either way; only what is recorded differs
 * (D-40).
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"

/** A span around an effect, when the running fiber has tracing on. */
export const traced =
  (name: string, attributes: () => Record<string, unknown>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      FiberRef.get(FiberRef.currentTracerEnabled),
      (on) => on ? Effect.withSpan(effect, name, { captureStackTrace: false, attributes: attributes() }) : effect
    )

/** Runs `f` inside a span named `name` (when tracing is on), returning its result. */
export type TracedPlain = <A>(name: string, attributes: () => Record<string, unknown>, f: () => A) => A

/**
 * The span of a request answered without an effect step (`Requests.Outcome`): the same span
 * `traced` records, made with the tracer, clock and tracing switch of the fiber that builds the
 * server (read once per server).
 */
export const makeTracedPlain: Effect.Effect<TracedPlain> = Effect.gen(function*() {
  const on = yield* FiberRef.get(FiberRef.currentTracerEnabled)
  if (!on) return (_name, _attributes, f) => f()
  const tracer = yield* Effect.tracer
  const clock = yield* Effect.clock
  return (name, attributes, f) => {
    const span = tracer.span(name, Option.none(), Context.empty(), [], clock.unsafeCurrentTimeNanos(), "internal")
    for (const [key, value] of Object.entries(attributes())) span.attribute(key, value)
    try {
      const result = f()
      span.end(clock.unsafeCurrentTimeNanos(), Exit.void)
      return result
    } catch (error) {
      span.end(clock.unsafeCurrentTimeNanos(), Exit.die(error))
      throw error
    }
  }
})
