/**
 * The rules both stores follow, apart from their SQL: machine offers and claims (issue 22), the
 * author of a removed user's messages, the ACL and its bans (SPEC §3.12), console enrollment codes
 * (D-51). Each store supplies its statements; the decisions are made here, once.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { StoreConflict } from "../Store.js"

// ---------------------------------------------------------------------------------------------
// Machine offers (issue 22)
// ---------------------------------------------------------------------------------------------

/** The statements of `offerMachine`, run in the caller's transaction. */
export interface OfferStatements<E> {
  /** Whether the key is a machine of anyone. */
  readonly keyBound: Effect.Effect<boolean, E>
  /** Whether the user has offered the key already. */
  readonly keyOffered: Effect.Effect<boolean, E>
  /** Whether the user has a machine of the name, or of a look-alike of it. */
  readonly nameTaken: Effect.Effect<boolean, E>
  readonly insertOffer: Effect.Effect<unknown, E>
}

/**
 * Offer a key: one key, one user — refused (`"pubkey"`) when it is bound anywhere or already offered
 * by this user (SPEC: pubkey anywhere); then refused (`"machine"`) when the user has a machine of
 * that name or a look-alike; else the offer is recorded (an offer of a name the user already offered
 * is the store's uniqueness conflict).
 */
export const offerMachine = <E>(
  input: { readonly name: string; readonly pubkey: string },
  statements: OfferStatements<E>
): Effect.Effect<void, E | StoreConflict> =>
  Effect.gen(function*() {
    const bound = yield* statements.keyBound
    const offered = yield* statements.keyOffered
    if (bound || offered) return yield* new StoreConflict({ what: "pubkey", value: input.pubkey })
    if (yield* statements.nameTaken) return yield* new StoreConflict({ what: "machine", value: input.name })
    yield* statements.insertOffer
  })

/**
 * Accept an offer: when `user` was offered the key under that name, the key becomes that machine and
 * every offer of it lapses (`true`); without such an offer nothing changes (`false`).
 */
export const claimMachine = <E>(statements: {
  /** Whether the user was offered the key under the name. */
  readonly offered: Effect.Effect<boolean, E>
  /** Insert the machine and delete every offer of the key. */
  readonly bind: Effect.Effect<unknown, E>
}): Effect.Effect<boolean, E> =>
  Effect.flatMap(statements.offered, (offered) => offered ? Effect.as(statements.bind, true) : Effect.succeed(false))

// ---------------------------------------------------------------------------------------------
// Removed users (issue 22)
// ---------------------------------------------------------------------------------------------

/**
 * The rows kept after a user is removed must not look written by whoever registers the name next:
 * senders starting with `prefix` (`<user>/`, `prefixLength` code points) start with `replacement`
 * (`<user> (removed)/`) instead, which no name can be (names hold no whitespace).
 */
export const removedAuthor = (username: string) => {
  const prefix = `${username}/`
  return { prefix, prefixLength: [...prefix].length, replacement: `${username} (removed)/` } as const
}

// ---------------------------------------------------------------------------------------------
// ACL and bans (SPEC §3.12)
// ---------------------------------------------------------------------------------------------

/** A store's statements on one (channel, user) pair of the ACL and the bans. */
export interface AclStatements<E> {
  /** A no-op when the channel no longer exists (a concurrent delete wins) or the row is there. */
  readonly insertMember: (channel: string, user: string) => Effect.Effect<unknown, E>
  readonly deleteMember: (channel: string, user: string) => Effect.Effect<unknown, E>
  /** A no-op when the channel no longer exists or the row is there. */
  readonly insertBan: (channel: string, user: string) => Effect.Effect<unknown, E>
  readonly deleteBan: (channel: string, user: string) => Effect.Effect<unknown, E>
}

/**
 * The ACL's compound changes, each to run in one transaction: `acl_add` adds to the ACL and lifts
 * any ban; a ban removes from the ACL and records the ban.
 */
export const aclRules = <E>(statements: AclStatements<E>) => ({
  aclAdd: (channel: string, user: string): Effect.Effect<void, E> =>
    Effect.asVoid(Effect.zipRight(statements.insertMember(channel, user), statements.deleteBan(channel, user))),
  ban: (channel: string, user: string): Effect.Effect<void, E> =>
    Effect.asVoid(Effect.zipRight(statements.deleteMember(channel, user), statements.insertBan(channel, user)))
})
