/**
 * One reconnecting link (SPEC §4.10.2, §8 `tail`): run a connection's life again and again with
 * exponential backoff, resetting the backoff once a link has stayed up for the stability window,
 * and keep a live link warm with pings.
 *
 * @since 0.1.0
 */
import { Limits } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Backoff from "./Backoff.js"

/**
 * The wait before the next attempt and the attempt counter after it. `upForMs` is how long the
 * link that just ended was up (none if it never came up); a stable one resets the backoff.
 *
 * @since 0.1.0
 * @category arithmetic
 */
export const nextDelay = (
  backoff: Backoff.Backoff,
  attempt: number,
  upForMs: Option.Option<number>
): { readonly delayMs: number; readonly attempt: number } => {
  const current = Option.isSome(upForMs) && upForMs.value >= Limits.STABILITY_WINDOW_MS ? 0 : attempt
  return { delayMs: Backoff.delay(backoff, current), attempt: current + 1 }
}

/** @since 0.1.0 @category models */
export interface Options<A, E, R, R2> {
  readonly backoff: Backoff.Backoff
  /**
   * One connection's life. It calls `up` once the link is established, and succeeds with a
   * description of how it ended when the link is lost in an ordinary way; a failure stops the loop.
   */
  readonly session: (up: Effect.Effect<void>) => Effect.Effect<A, E, R>
  /** Told how the attempt ended and how long the loop waits before the next one. */
  readonly onRetry: (ended: A, delayMs: number) => Effect.Effect<void, never, R2>
}

/**
 * Run `session` until it fails; between attempts wait `backoff` (reset after a stable link).
 *
 * @since 0.1.0
 * @category running
 */
export const forever = <A, E, R, R2>(options: Options<A, E, R, R2>): Effect.Effect<never, E, R | R2> =>
  Effect.gen(function*() {
    const upAt = yield* Ref.make(Option.none<number>())
    const up = Clock.currentTimeMillis.pipe(Effect.flatMap((now) => Ref.set(upAt, Option.some(now))))
    let attempt = 0
    for (;;) {
      yield* Ref.set(upAt, Option.none())
      const ended = yield* options.session(up)
      const now = yield* Clock.currentTimeMillis
      const next = nextDelay(options.backoff, attempt, Option.map(yield* Ref.get(upAt), (at) => now - at))
      attempt = next.attempt
      yield* options.onRetry(ended, next.delayMs)
      yield* Effect.sleep(next.delayMs)
    }
  })

/**
 * Ping now and then every `intervalMs` while the scope is open (never queued while down, D-26).
 *
 * @since 0.1.0
 * @category running
 */
export const keepalive = <E>(
  ping: Effect.Effect<void, E>,
  intervalMs: number = Limits.KEEPALIVE_INTERVAL_MS
): Effect.Effect<void, never, Scope.Scope> =>
  ping.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(intervalMs)), Effect.asVoid, Effect.forkScoped, Effect.asVoid)
