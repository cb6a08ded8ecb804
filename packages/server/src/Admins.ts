/**
 * The server-admin allowlist (SPEC §3.15, DECISIONS D-15): `user` (unpinned) or `user=<pubkey>`
 * (pinned to one base64url Ed25519 key), given as repeatable values that may be comma lists.
 *
 * @since 0.1.0
 */
import { Base64Url, Limits, Names, Skeleton } from "@conclave/protocol"
import * as Data from "effect/Data"
import * as Either from "effect/Either"

/** @since 0.1.0 @category models */
export interface AdminEntry {
  readonly user: string
  /** The base64url public key the name is reserved for, or null when unpinned. */
  readonly pin: string | null
}

/** An admin spec that cannot be used (bad name or a pin that is not a 32-byte key). @since 0.1.0 @category errors */
export class AdminSpecError
  extends Data.TaggedError("AdminSpecError")<{ readonly spec: string; readonly reason: string }>
{
  override get message() {
    return `invalid --admin \`${this.spec}\`: ${this.reason}`
  }
}

const parseOne = (spec: string): Either.Either<AdminEntry, AdminSpecError> => {
  const eq = spec.indexOf("=")
  const user = eq < 0 ? spec : spec.slice(0, eq)
  const pin = eq < 0 ? null : spec.slice(eq + 1)
  const problem = Names.nameProblem(user)
  if (problem !== undefined) return Either.left(new AdminSpecError({ spec, reason: `username ${problem}` }))
  if (pin !== null) {
    const bytes = Base64Url.decode(pin)
    if (bytes === undefined || bytes.length !== Limits.PUBLIC_KEY_BYTES) {
      return Either.left(
        new AdminSpecError({ spec, reason: "the pinned key must be base64url (no padding) of exactly 32 bytes" })
      )
    }
  }
  return Either.right({ user, pin })
}

/**
 * Parse admin specs. Each value may be a comma-separated list; blanks are skipped; the first `=`
 * splits user from pin. A later entry for the same user replaces an earlier one.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (values: ReadonlyArray<string>): Either.Either<ReadonlyArray<AdminEntry>, AdminSpecError> => {
  const byUser = new Map<string, AdminEntry>()
  for (const value of values) {
    for (const raw of value.split(",")) {
      const spec = raw.trim()
      if (spec.length === 0) continue
      const entry = parseOne(spec)
      if (Either.isLeft(entry)) return Either.left(entry.left)
      byUser.set(entry.right.user, entry.right)
    }
  }
  return Either.right([...byUser.values()])
}

/** Lookups over a parsed allowlist. @since 0.1.0 @category models */
export interface Allowlist {
  readonly isAdmin: (user: string) => boolean
  /**
   * The pinned key for `user`, if the name is pinned — or looks like a pinned name (issue 22: a
   * look-alike registered first would otherwise take the pinned name's skeleton).
   */
  readonly pinOf: (user: string) => string | undefined
}

/** @since 0.1.0 @category constructors */
export const allowlist = (entries: ReadonlyArray<AdminEntry>): Allowlist => {
  const byUser = new Map(entries.map((e) => [e.user, e]))
  const bySkeleton = new Map(
    entries.filter((e) => e.pin !== null).map((e) => [Skeleton.skeleton(e.user), e])
  )
  return {
    isAdmin: (user) => byUser.has(user),
    pinOf: (user) => byUser.get(user)?.pin ?? bySkeleton.get(Skeleton.skeleton(user))?.pin ?? undefined
  }
}
