/**
 * Bounded waits on conditions the code under test reaches in its own time: the one polling helper of
 * every package's tests.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TestServices from "effect/TestServices"
import { WireError } from "./Client.js"

/**
 * What a wait is for, as its failure says it: a string, or a function called once the wait has
 * timed out (so the message can describe the last state seen).
 *
 * @since 0.1.0
 * @category models
 */
export type What = string | (() => string)

// Waits are bounded in real time, also in tests that run on the TestClock (where a sleep on the test
// clock would never end); the probe itself runs with the test's own services.
const now = TestServices.provideLive(Clock.currentTimeMillis)

/**
 * Run `probe` every `every` until it holds — a plain check answering `true`, or an effect answering
 * `Some` (whose value is the result) — for at most `timeout` of real time, then fail with a
 * `WireError` saying how long it waited and for `what`.
 *
 * @since 0.1.0
 * @category waits
 */
export function eventually(
  what: What,
  probe: () => boolean,
  timeout?: Duration.DurationInput,
  every?: Duration.DurationInput
): Effect.Effect<void, WireError>
export function eventually<A, E, R>(
  what: What,
  probe: Effect.Effect<Option.Option<A>, E, R>,
  timeout?: Duration.DurationInput,
  every?: Duration.DurationInput
): Effect.Effect<A, E | WireError, R>
export function eventually<A, E, R>(
  what: What,
  probe: (() => boolean) | Effect.Effect<Option.Option<A>, E, R>,
  timeout: Duration.DurationInput = "5 seconds",
  every: Duration.DurationInput = "50 millis"
): Effect.Effect<A | void, E | WireError, R> {
  const ms = Duration.toMillis(Duration.decode(timeout))
  const pause = TestServices.provideLive(Effect.sleep(every))
  const step: Effect.Effect<Option.Option<A | void>, E, R> = typeof probe === "function"
    ? Effect.sync(() => (probe() ? Option.some(undefined) : Option.none()))
    : probe
  return Effect.gen(function*() {
    const deadline = (yield* now) + ms
    for (;;) {
      const got = yield* step
      if (Option.isSome(got)) return got.value
      if ((yield* now) > deadline) {
        return yield* new WireError({
          message: `timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`
        })
      }
      yield* pause
    }
  })
}
