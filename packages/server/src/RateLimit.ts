/**
 * In-memory abuse limits on Effect's `Clock` (DECISIONS D-10): a per-session token bucket over
 * `channel_msg` + `whisper`, and a per-address cap on `register` attempts per minute.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { ServerConfig } from "./ServerConfig.js"

/** A token bucket; `take` answers 0 when a token was taken, else the ms until one is available. @since 0.1.0 @category models */
export interface TokenBucket {
  readonly take: Effect.Effect<number>
  /**
   * `take` at a time read from the same `Clock` (the synchronous request path). A time earlier than
   * the last one adds no tokens and takes none back.
   */
  readonly takeAt: (now: number) => number
}

/**
 * A bucket that starts full with `burst` tokens and refills `ratePerSecond` per second.
 * `ratePerSecond <= 0` disables the limit.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeTokenBucket = (ratePerSecond: number, burst: number): Effect.Effect<TokenBucket> =>
  Effect.map(Clock.currentTimeMillis, (start) => unsafeMakeTokenBucket(ratePerSecond, burst, start))

/**
 * `makeTokenBucket` started at `start` (epoch ms read from the `Clock` its `takeAt` callers use).
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMakeTokenBucket = (ratePerSecond: number, burst: number, start: number): TokenBucket => {
  let tokens = Math.max(1, burst)
  let last = start
  const takeAt = (now: number) => {
    if (ratePerSecond <= 0) return 0
    tokens = Math.min(Math.max(1, burst), tokens + (Math.max(0, now - last) * ratePerSecond) / 1000)
    last = Math.max(last, now)
    if (tokens >= 1) {
      tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil(((1 - tokens) * 1000) / ratePerSecond))
  }
  return { take: Effect.map(Clock.currentTimeMillis, takeAt), takeAt }
}

const WINDOW_MS = 60_000

/** Per-remote-address `register` attempts in a sliding one-minute window. @since 0.1.0 @category services */
export class RegisterLimiter extends Effect.Service<RegisterLimiter>()("@conclave/server/RegisterLimiter", {
  effect: Effect.gen(function*() {
    const { registerLimitPerMinute } = yield* ServerConfig
    const clock = yield* Effect.clock
    const attempts = new Map<string, Array<number>>()
    /** Record an attempt now (on the `Clock` the service was built with); `true` when it is within the limit. */
    const attempt = (address: string): boolean => {
      if (registerLimitPerMinute <= 0) return true
      const now = clock.unsafeCurrentTimeMillis()
      const recent = (attempts.get(address) ?? []).filter((t) => t > now - WINDOW_MS)
      if (recent.length >= registerLimitPerMinute) {
        attempts.set(address, recent)
        return false
      }
      recent.push(now)
      attempts.set(address, recent)
      return true
    }
    return { attempt } as const
  })
}) {}
