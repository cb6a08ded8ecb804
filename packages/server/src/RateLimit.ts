/**
 * In-memory abuse limits on Effect's `Clock` (DECISIONS D-10): a per-session token bucket over
 * `channel_msg` + `whisper`, and a per-address cap on handshake failures that cost the server.
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

/**
 * Per-remote-address handshake failures that cost the server, in a sliding one-minute window
 * (DECISIONS D-10, issue 22): a signature verified bad, or a registration that created a user.
 * Frames before the signature is checked count for nothing, so forged `register` frames and other
 * peers' pending sockets cannot lock an address out; once an address is over the cap, a key already
 * enrolled is still let through (the handshake checks `blocked` only for unknown keys).
 *
 * @since 0.1.0
 * @category services
 */
export class RegisterLimiter extends Effect.Service<RegisterLimiter>()("@conclave/server/RegisterLimiter", {
  effect: Effect.gen(function*() {
    const { registerLimitPerMinute } = yield* ServerConfig
    const clock = yield* Effect.clock
    const charges = new Map<string, Array<number>>()
    const recent = (address: string, now: number): Array<number> => {
      const all = charges.get(address)
      if (all === undefined) return []
      const kept = all.filter((t) => t > now - WINDOW_MS)
      if (kept.length === 0) charges.delete(address)
      else if (kept.length !== all.length) charges.set(address, kept)
      return kept
    }
    /**
     * The ms until `address` may try again when it is over the cap (on the `Clock` the service was
     * built with), else `undefined`. Records nothing.
     */
    const blocked = (address: string): number | undefined => {
      if (registerLimitPerMinute <= 0) return undefined
      const now = clock.unsafeCurrentTimeMillis()
      const kept = recent(address, now)
      if (kept.length < registerLimitPerMinute) return undefined
      return Math.max(1, kept[kept.length - registerLimitPerMinute]! + WINDOW_MS - now)
    }
    /** Record one costly attempt from `address` (a bad signature, or a new registration). */
    const charge = (address: string): void => {
      if (registerLimitPerMinute <= 0) return
      const now = clock.unsafeCurrentTimeMillis()
      const kept = recent(address, now)
      kept.push(now)
      // bounded per address: older charges than the cap's worth say nothing more
      if (kept.length > registerLimitPerMinute) kept.splice(0, kept.length - registerLimitPerMinute)
      charges.set(address, kept)
      // many addresses (an IPv6 range): drop the ones whose window has passed
      if (charges.size > 65_536) { for (const a of [...charges.keys()]) recent(a, now) }
    }
    return { blocked, charge } as const
  })
}) {}
