/**
 * The durable state of a conclave server (SPEC §3.17, DECISIONS D-4, D-5, D-14, D-18, D-20).
 *
 * The hub depends on this port only; `SqliteStore.layer` is the embedded default. Every method that
 * mutates more than one row runs in one transaction. Presence, subscriptions, the admin allowlist
 * and whispers are never stored.
 *
 * @since 0.1.0
 */
import { Errors, type Frames, Limits } from "@conclave/protocol"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"

/** A storage failure: answered as `internal` on the wire, text never includes SQL. @since 0.1.0 @category errors */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    return Errors.Messages.storageFailure(this.operation)
  }
}

const unreachableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // PostgreSQL: too_many_connections, admin_shutdown, crash_shutdown, cannot_connect_now
  "53300",
  "57P01",
  "57P02",
  "57P03"
])

/**
 * Whether a storage failure means the store is out of reach (a lost connection, a timeout) rather
 * than refused the operation: answered as `unavailable` with a retry delay (D-42), not `internal`.
 *
 * @since 0.1.0
 * @category errors
 */
export const isUnavailable = (error: StoreError): boolean => {
  let cause: unknown = error.cause
  for (let depth = 0; depth < 6 && cause !== undefined && cause !== null; depth++) {
    if (typeof cause === "string") return cause === "timed out"
    if (typeof cause !== "object") return false
    const { code, message } = cause as { readonly code?: unknown; readonly message?: unknown }
    if (typeof code === "string" && unreachableCodes.has(code)) return true
    if (
      typeof message === "string" &&
      /timed out|timeout exceeded|connection terminated|ECONNREFUSED|ECONNRESET/i.test(message)
    ) {
      return true
    }
    cause = (cause as { readonly cause?: unknown }).cause
  }
  return false
}

/** How long a client is told to wait before retrying against an unreachable store. @since 0.1.0 @category errors */
export const UNAVAILABLE_RETRY_MS = 1000

/** A uniqueness conflict: answered as `conflict` on the wire (D-8). @since 0.1.0 @category errors */
export class StoreConflict extends Data.TaggedError("StoreConflict")<{
  readonly what: "username" | "pubkey" | "machine" | "channel"
  readonly value: string
}> {}

/** @since 0.1.0 @category models */
export interface UserRow {
  readonly username: string
  /** RFC 3339 */
  readonly created_at: string
}

/** @since 0.1.0 @category models */
export interface MachineRow {
  readonly user: string
  readonly name: string
  /** base64url, 32 bytes */
  readonly pubkey: string
  /** RFC 3339 */
  readonly added_at: string
}

/** @since 0.1.0 @category models */
export interface ChannelRow {
  readonly name: string
  readonly visibility: Frames.Visibility
  readonly created_by: string
  /** RFC 3339 */
  readonly created_at: string
}

/** @since 0.1.0 @category models */
export interface InviteRow {
  readonly token: string
  readonly channel: string
  readonly uses_remaining: number | null
  /** RFC 3339, or null for never */
  readonly expires_at: string | null
  readonly created_by: string
}

/** A message to retain. `from` is the sender's path string `user/machine/session`. @since 0.1.0 @category models */
export interface NewMessage {
  readonly channel: string
  readonly from: string
  readonly payload: Frames.Payload
  readonly ts_ms: number
  readonly origin: Frames.Origin
  readonly reply_to: number | null
}

/** Where a history page starts (exclusive). @since 0.1.0 @category models */
export type Since = { readonly _tag: "Seq"; readonly seq: number } | { readonly _tag: "Ms"; readonly ms: number }

/** @since 0.1.0 @category models */
export interface HistoryPage {
  /** Oldest first, ordered by seq; rows that cannot be decoded are skipped. */
  readonly messages: ReadonlyArray<Frames.HistoryMessage>
  /** True when the page limit cut the page. */
  readonly more: boolean
}

/** Outcome of redeeming an invite token for a user (SPEC §3.13). @since 0.1.0 @category models */
export type Redemption = "redeemed" | "invalid"

/**
 * How long a console enrollment code is remembered after it expired, so that a late try is told
 * "used" or "expired" rather than "not found" (D-51). Past that it is purged.
 *
 * @since 0.1.0
 * @category models
 */
export const ENROLL_CODE_KEPT_MS: number = Limits.ENROLL_CODE_TTL_MS

/** Outcome of `createEnrollCode`. @since 0.1.0 @category models */
export type EnrollCodeCreation =
  | { readonly _tag: "Created" }
  /** The user already holds `maxOutstanding` (or more) unredeemed, unexpired codes: nothing stored. */
  | { readonly _tag: "Capped"; readonly outstanding: number }

/** Outcome of `redeemEnrollCode` (D-51). @since 0.1.0 @category models */
export type EnrollRedemption =
  | { readonly _tag: "Redeemed"; readonly user: string }
  | {
    readonly _tag: "Refused"
    /** Never issued or long gone, past its expiry, or redeemed already. */
    readonly reason: "unknown" | "expired" | "used"
  }

/** What `removeUser` deleted, so the hub can drop live state. @since 0.1.0 @category models */
export interface RemovedUser {
  /** Channels the user had created, now deleted with their cascades. */
  readonly deletedChannels: ReadonlyArray<string>
}

/** @since 0.1.0 @category models */
export interface StoreStatus {
  readonly kind: "sqlite" | "memory" | "postgres"
  readonly ok: boolean
}

/** @since 0.1.0 @category models */
export interface StoreShape {
  /** The persistent random id of this data dir, created race-free on first use (SPEC §3.18). */
  readonly instanceId: Effect.Effect<string, StoreError>
  /** Which store this is and whether it answers now (a cheap query; for `GET /health` and `/status`, D-41). */
  readonly status: Effect.Effect<StoreStatus>

  // users and machines
  /**
   * Create the user and its first machine in one transaction. Fails with `StoreConflict` on a taken
   * username or one that looks like it (`what: "username"`, issue 22) or an enrolled key
   * (`what: "pubkey"`). Offers of the key to other users lapse.
   */
  readonly registerUser: (input: {
    readonly username: string
    readonly machine: string
    readonly pubkey: string
    readonly now: string
  }) => Effect.Effect<void, StoreError | StoreConflict>
  readonly userExists: (username: string) => Effect.Effect<boolean, StoreError>
  readonly listUsers: Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Delete the user's created channels (full cascade), memberships everywhere, machines and user row. Idempotent. */
  readonly removeUser: (username: string) => Effect.Effect<RemovedUser, StoreError>
  readonly findMachineByKey: (pubkey: string) => Effect.Effect<Option.Option<MachineRow>, StoreError>
  /** The user's machines and open offers (`offerMachine`; `added_at` is the offer's time), by name. */
  readonly listMachines: (user: string) => Effect.Effect<ReadonlyArray<MachineRow>, StoreError>
  /** `StoreConflict` with `what: "machine"` (name taken for this user) or `"pubkey"` (key enrolled anywhere). */
  readonly addMachine: (
    input: { readonly user: string; readonly name: string; readonly pubkey: string; readonly now: string }
  ) => Effect.Effect<void, StoreError | StoreConflict>
  /**
   * `machine_add` (issue 22): offer `pubkey` to its holder as machine `name` of `user`. The key grants
   * nothing until its holder accepts by registering as `user`/`name` (`claimMachine`), signing the
   * server's challenge. `StoreConflict` `"pubkey"` when the key is already a machine anywhere,
   * `"machine"` when the user has a machine or an offer of that name or a look-alike of it.
   */
  readonly offerMachine: (
    input: { readonly user: string; readonly name: string; readonly pubkey: string; readonly now: string }
  ) => Effect.Effect<void, StoreError | StoreConflict>
  /**
   * Accept the offer of `pubkey` as `user`/`name`: the key becomes that machine and every other offer
   * of it lapses (`true`); `false` when there is no such offer. `StoreConflict` as `addMachine`.
   */
  readonly claimMachine: (
    input: { readonly user: string; readonly name: string; readonly pubkey: string; readonly now: string }
  ) => Effect.Effect<boolean, StoreError | StoreConflict>
  /** The oldest open offer of `pubkey`, to tell its holder how to accept it. */
  readonly findOfferByKey: (
    pubkey: string
  ) => Effect.Effect<Option.Option<{ readonly user: string; readonly name: string }>, StoreError>
  /** Idempotent; withdraws an offer of that name too. */
  readonly removeMachine: (user: string, name: string) => Effect.Effect<void, StoreError>

  // channels
  readonly getChannel: (name: string) => Effect.Effect<Option.Option<ChannelRow>, StoreError>
  /** Insert the channel and the creator's membership in one transaction; `StoreConflict` `"channel"` if taken. */
  readonly createChannel: (input: {
    readonly name: string
    readonly visibility: Frames.Visibility
    readonly createdBy: string
    readonly now: string
  }) => Effect.Effect<void, StoreError | StoreConflict>
  /** Delete with memberships, invites, bans and messages. Idempotent. */
  readonly deleteChannel: (name: string) => Effect.Effect<void, StoreError>
  /** Memberships, invites, bans and messages follow. `StoreConflict` `"channel"` if `newName` is taken. */
  readonly renameChannel: (name: string, newName: string) => Effect.Effect<void, StoreError | StoreConflict>
  readonly setVisibility: (name: string, visibility: Frames.Visibility) => Effect.Effect<void, StoreError>
  /**
   * Channels visible to `user` (SPEC §3.7): all of them for a server admin, else public ones plus any
   * whose ACL holds the user. `member` is ACL membership.
   */
  readonly listVisibleChannels: (
    user: string,
    isServerAdmin: boolean
  ) => Effect.Effect<ReadonlyArray<Frames.ChannelInfo>, StoreError>

  // ACL and bans
  readonly isMember: (channel: string, user: string) => Effect.Effect<boolean, StoreError>
  /** Idempotent insert. */
  readonly addMember: (channel: string, user: string) => Effect.Effect<void, StoreError>
  /** Add to the ACL and lift any ban, in one transaction (SPEC §3.12 `acl_add`). */
  readonly aclAdd: (channel: string, user: string) => Effect.Effect<void, StoreError>
  /** Idempotent. */
  readonly removeMember: (channel: string, user: string) => Effect.Effect<void, StoreError>
  readonly listMembers: (channel: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Remove from the ACL and record the ban, in one transaction. Idempotent. */
  readonly ban: (channel: string, user: string) => Effect.Effect<void, StoreError>
  /** Idempotent; grants no membership. */
  readonly unban: (channel: string, user: string) => Effect.Effect<void, StoreError>
  readonly listBans: (channel: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Every ban, for the in-memory mirror loaded at startup. */
  readonly allBans: Effect.Effect<ReadonlyArray<{ readonly channel: string; readonly user: string }>, StoreError>

  // invites
  readonly createInvite: (row: InviteRow) => Effect.Effect<void, StoreError>
  readonly getInvite: (token: string) => Effect.Effect<Option.Option<InviteRow>, StoreError>
  readonly deleteInvite: (token: string) => Effect.Effect<void, StoreError>
  readonly listInvites: (channel: string) => Effect.Effect<ReadonlyArray<InviteRow>, StoreError>
  /**
   * Atomically redeem `token` for `user` on `channel` at `nowMs` and add the ACL entry, in one
   * transaction (D-14). `"invalid"` when the token is absent, bound to another channel, expired
   * (then deleted; an unparseable expiry counts as expired) or spent; the use that takes the last
   * remaining use deletes the token. Unlimited tokens (`uses_remaining` null) are never consumed.
   */
  readonly redeemInvite: (input: {
    readonly token: string
    readonly channel: string
    readonly user: string
    readonly nowMs: number
  }) => Effect.Effect<Redemption, StoreError>

  // console enrollment codes (D-51): one table for every node of a deployment; only a SHA-256 of
  // each code is stored, never the code
  /**
   * Record `code` for `user`, valid until `expiresAtMs`, unless the user already holds
   * `maxOutstanding` unredeemed, unexpired codes (`Capped`, with how many; nothing stored). Checked
   * and recorded in one transaction, one user's creates taking turns. Codes forgotten by
   * `purgeEnrollCodes` go first. A `StoreError` when the user does not exist.
   */
  readonly createEnrollCode: (input: {
    readonly code: string
    readonly user: string
    readonly nowMs: number
    readonly expiresAtMs: number
    readonly maxOutstanding: number
  }) => Effect.Effect<EnrollCodeCreation, StoreError>
  /** The user's unredeemed codes not yet expired at `nowMs`. */
  readonly countEnrollCodes: (user: string, nowMs: number) => Effect.Effect<number, StoreError>
  /**
   * Take `code` at `nowMs`, single use under concurrency: of any number of concurrent redeems (on
   * any node) exactly one is `Redeemed`. Else why not: `used` (redeemed already), `expired`, or
   * `unknown` (never issued, or expired more than `ENROLL_CODE_KEPT_MS` ago).
   */
  readonly redeemEnrollCode: (input: {
    readonly code: string
    readonly nowMs: number
  }) => Effect.Effect<EnrollRedemption, StoreError>
  /** Give a redeemed code back (the enrollment failed after taking it). Idempotent. */
  readonly releaseEnrollCode: (code: string) => Effect.Effect<void, StoreError>
  /** Delete codes that expired more than `ENROLL_CODE_KEPT_MS` before `nowMs`; returns how many. */
  readonly purgeEnrollCodes: (nowMs: number) => Effect.Effect<number, StoreError>

  // messages
  /**
   * Append and commit; resolves with the new seq only once the row is durable (D-5). The append is
   * queued when the effect starts, so appends started earlier get lower seqs; a store may commit
   * concurrent appends together (group commit is the implementation's business). Appends to one
   * channel resolve in seq order, so a caller that publishes as soon as its append resolves
   * publishes in seq order. Interrupting the wait does not withdraw the append.
   */
  readonly appendMessage: (message: NewMessage) => Effect.Effect<number, StoreError>
  readonly messageExists: (channel: string, seq: number) => Effect.Effect<boolean, StoreError>
  /**
   * Up to `limit` messages of `channel` after `since` (exclusive), ordered by seq, skipping rows
   * with `ts_ms < cutoffMs` (D-18) and rows that cannot be decoded.
   */
  readonly readSince: (input: {
    readonly channel: string
    readonly since: Since
    readonly cutoffMs: number
    readonly limit: number
    /**
     * Stop once the rows' stored payloads reach this many bytes (at least one row; `more` says the
     * page was cut): the store reads no more than that (issue 22).
     */
    readonly maxBytes?: number
  }) => Effect.Effect<HistoryPage, StoreError>
  /**
   * Scroll-back (`read_since` with `before_seq`): the newest `limit` messages of `channel` with
   * `seq < beforeSeq`, returned oldest first, skipping rows with `ts_ms < cutoffMs` (D-18) and rows
   * that cannot be decoded. `more` is true when older ones remain (or `maxBytes` cut the page,
   * which then keeps the newest rows: at least one).
   */
  readonly readBefore: (input: {
    readonly channel: string
    readonly beforeSeq: number
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) => Effect.Effect<HistoryPage, StoreError>
  /** Delete messages with `ts_ms < cutoffMs`; returns how many. */
  readonly purgeOlderThan: (cutoffMs: number) => Effect.Effect<number, StoreError>
}

/** @since 0.1.0 @category tags */
export class Store extends Context.Tag("@conclave/server/Store")<Store, StoreShape>() {}
