/**
 * Bounded waits on conditions the code under test reaches in its own time.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { WireError } from "./Client.js"

/**
 * Run `probe` every `every` until it gives a value, for at most `timeout`, then fail naming `what`.
 *
 * @since 0.1.0
 * @category waits
 */
export const eventually = <A, E, R>(
  what: string,
  probe: Effect.Effect<Option.Option<A>, E, R>,
  timeout: Duration.DurationInput = "5 seconds",
  every: Duration.DurationInput = "50 millis"
): Effect.Effect<A, E | WireError, R> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(timeout))
    for (;;) {
      const got = yield* probe
      if (Option.isSome(got)) return got.value
      if ((yield* Clock.currentTimeMillis) > deadline) {
        return yield* new WireError({ message: `timed out waiting for ${what}` })
      }
      yield* Effect.sleep(every)
    }
  })
