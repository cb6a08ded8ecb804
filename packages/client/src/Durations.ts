/**
 * The duration syntax of SPEC §6.1: `90`, `15m`, `24h`, `7d`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"

const MULTIPLIERS: Readonly<Record<string, number>> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }

/** The largest duration accepted, in seconds (beyond it is an error, never a crash). @since 0.1.0 @category constants */
export const MAX_SECONDS = 1e15

const pattern = /^([0-9]+)([smhd]?)$/

/**
 * Parse a duration into whole seconds. The input is trimmed; a trailing `s`, `m`, `h` or `d`
 * multiplies the leading non-negative integer by 1, 60, 3600 or 86400; no suffix means seconds.
 * Anything else (empty, fractional, signed, unknown suffix, overflowing) is
 * ``Left("invalid duration `<value>`")``.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseSeconds = (s: string): Either.Either<number, string> => {
  const match = pattern.exec(s.trim())
  if (match === null) return Either.left(invalid(s))
  const seconds = Number(match[1]) * MULTIPLIERS[match[2]]
  if (!Number.isSafeInteger(seconds) || seconds > MAX_SECONDS) return Either.left(invalid(s))
  return Either.right(seconds)
}

const invalid = (s: string): string => `invalid duration \`${s}\``
