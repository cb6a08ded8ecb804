/**
 * A small seeded pseudo-random generator (mulberry32): every generated input is reproducible from
 * the seed printed by the suite.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 @category models */
export interface Prng {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [min, max]. */
  readonly int: (min: number, max: number) => number
  readonly chance: (p: number) => boolean
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  readonly bytes: (n: number) => Buffer
  /** A derived generator (independent stream) for a sub-case. */
  readonly fork: (salt: number) => Prng
}

/** @since 0.1.0 @category constructors */
export const make = (seed: number): Prng => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(next() * items.length)]!,
    bytes: (n) => {
      const out = Buffer.allocUnsafe(n)
      for (let i = 0; i < n; i++) out[i] = int(0, 255)
      return out
    },
    fork: (salt) => make((seed ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0)
  }
}
