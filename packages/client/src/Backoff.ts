/**
 * Pure reconnect arithmetic for bridge links (SPEC §4.10.2) and `tail` (SPEC §8).
 *
 * @since 0.1.0
 */
import { Limits } from "@conclave/protocol"

/** Exponential backoff bounds in milliseconds. @since 0.1.0 @category models */
export interface Backoff {
  readonly base: number
  readonly cap: number
}

/** Bridge links: 200 ms × 2ⁿ, capped at 30 s. @since 0.1.0 @category constants */
export const bridge: Backoff = { base: Limits.RECONNECT_BACKOFF_BASE_MS, cap: Limits.RECONNECT_BACKOFF_CAP_MS }

/** `tail`: 1 s × 2ⁿ, capped at 30 s. @since 0.1.0 @category constants */
export const tail: Backoff = { base: Limits.TAIL_BACKOFF_BASE_MS, cap: Limits.TAIL_BACKOFF_CAP_MS }

/**
 * The delay before retry number `attempt` (0-based): `base × 2^attempt`, never above `cap`.
 * Negative or non-integer attempts are clamped to the nearest valid attempt; huge ones give `cap`.
 *
 * @since 0.1.0
 * @category arithmetic
 */
export const delay = (b: Backoff, attempt: number): number => {
  const n = Number.isFinite(attempt) ? Math.max(0, Math.floor(attempt)) : attempt > 0 ? Infinity : 0
  return Math.min(b.cap, b.base * Math.pow(2, n))
}
