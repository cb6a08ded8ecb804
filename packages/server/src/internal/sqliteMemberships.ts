/**
 * The SQLite store's memberships, bans and invites (SPEC §3.13).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { InviteRow } from "../Store.js"
import { IS_MEMBER } from "./sqliteRows.js"
import { decodeAll, InviteRowSchema, redeemInvite as redeemIn, toStoreError } from "./storeRows.js"

/** What the operations run on: the client, its write transaction, and its hot-read query. */
export interface SqliteAccess {
  readonly sql: SqlClient.SqlClient
  readonly tx: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  readonly query: (statement: string, params: ReadonlyArray<unknown>) => Effect.Effect<
    ReadonlyArray<unknown>,
    SqlError
  >
}

const decodeInvites = decodeAll(InviteRowSchema)

/** The membership, ban and invite operations of the `Store` port over `access`. */
export const makeMemberships = ({ query, sql, tx }: SqliteAccess) => {
  // ACL and bans ---------------------------------------------------------------------------------

  // Inserts are no-ops when the channel no longer exists (a concurrent delete wins).
  const insertMember = (channel: string, user: string) =>
    sql`INSERT OR IGNORE INTO memberships (channel, user)
        SELECT name, ${user} FROM channels WHERE name = ${channel}`

  const isMember = (channel: string, user: string) =>
    query(IS_MEMBER, [channel, user]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("isMember"))
    )

  const addMember = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(insertMember(channel, user))
  }, Effect.mapError(toStoreError("addMember")))

  const aclAdd = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(
      Effect.zipRight(insertMember(channel, user), sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`)
    )
  }, Effect.mapError(toStoreError("aclAdd")))

  const removeMember = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`)
  }, Effect.mapError(toStoreError("removeMember")))

  const listMembers = Effect.fnUntraced(function*(channel: string) {
    const rows = yield* sql<{ readonly user: string }>`
      SELECT user FROM memberships WHERE channel = ${channel} ORDER BY user`
    return rows.map((row) => row.user)
  }, Effect.mapError(toStoreError("listMembers")))

  const ban = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(
      Effect.zipRight(
        sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`,
        sql`INSERT OR IGNORE INTO bans (channel, user) SELECT name, ${user} FROM channels WHERE name = ${channel}`
      )
    )
  }, Effect.mapError(toStoreError("ban")))

  const unban = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`)
  }, Effect.mapError(toStoreError("unban")))

  const listBans = Effect.fnUntraced(function*(channel: string) {
    const rows = yield* sql<{ readonly user: string }>`SELECT user FROM bans WHERE channel = ${channel} ORDER BY user`
    return rows.map((row) => row.user)
  }, Effect.mapError(toStoreError("listBans")))

  const allBans = sql<{ readonly channel: string; readonly user: string }>`
    SELECT channel, user FROM bans ORDER BY channel, user`.pipe(
    Effect.map((rows) => rows.map((row) => ({ channel: row.channel, user: row.user }))),
    Effect.mapError(toStoreError("allBans")),
    Effect.withSpan("Store.allBans")
  )

  // invites ----------------------------------------------------------------------------------------

  const createInvite = Effect.fnUntraced(function*(row: InviteRow) {
    yield* tx(
      sql`INSERT INTO invites (token, channel, uses_remaining, expires_at, created_by)
          VALUES (${row.token}, ${row.channel}, ${row.uses_remaining}, ${row.expires_at}, ${row.created_by})`
    )
  }, Effect.mapError(toStoreError("createInvite")))

  const inviteColumns = sql.literal("token, channel, uses_remaining, expires_at, created_by")

  const getInvite = Effect.fnUntraced(function*(token: string) {
    const rows = yield* sql`SELECT ${inviteColumns} FROM invites WHERE token = ${token}`.pipe(
      Effect.flatMap(decodeInvites)
    )
    return Option.fromNullable(rows[0])
  }, Effect.mapError(toStoreError("getInvite")))

  const deleteInvite = Effect.fnUntraced(function*(token: string) {
    yield* tx(sql`DELETE FROM invites WHERE token = ${token}`)
  }, Effect.mapError(toStoreError("deleteInvite")))

  const listInvites = Effect.fnUntraced(function*(channel: string) {
    return yield* sql`SELECT ${inviteColumns} FROM invites WHERE channel = ${channel} ORDER BY token`.pipe(
      Effect.flatMap(decodeInvites)
    )
  }, Effect.mapError(toStoreError("listInvites")))

  const redeemInvite = Effect.fnUntraced(function*(input: {
    readonly token: string
    readonly channel: string
    readonly user: string
    readonly nowMs: number
  }) {
    return yield* tx(redeemIn(sql, insertMember, input))
  }, Effect.mapError(toStoreError("redeemInvite")))

  return {
    isMember,
    addMember,
    aclAdd,
    removeMember,
    listMembers,
    ban,
    unban,
    listBans,
    allBans,
    createInvite,
    getInvite,
    deleteInvite,
    listInvites,
    redeemInvite
  }
}
