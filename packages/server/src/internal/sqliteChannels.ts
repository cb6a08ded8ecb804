/**
 * The SQLite store's channels, their ACL, bans and invites (SPEC §3.7, §3.12, §3.13).
 *
 * @internal
 */
import { type Frames, Skeleton } from "@conclave/protocol"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { InviteRow } from "../Store.js"
import type { PointReads } from "./sqlitePointReads.js"
import { ChannelInfoRowSchema, GET_CHANNEL, IS_MEMBER, toConflict } from "./sqliteRows.js"
import {
  ChannelRowSchema,
  decodeAll,
  fastChannel,
  firstRow,
  InviteRowSchema,
  redeemInvite as redeemIn,
  toStoreError
} from "./storeRows.js"
import { aclRules } from "./storeRules.js"

/**
 * What the operations run on: the client, its write transaction, its hot-read query, and the point
 * reads on a second connection (none for a database only the client's connection can see).
 */
export interface SqliteAccess {
  readonly sql: SqlClient.SqlClient
  readonly tx: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  readonly query: (statement: string, params: ReadonlyArray<unknown>) => Effect.Effect<
    ReadonlyArray<unknown>,
    SqlError
  >
  readonly pointReads: PointReads | undefined
}

const decodeChannels = decodeAll(ChannelRowSchema)
const decodeInvites = decodeAll(InviteRowSchema)
const decodeChannelInfos = decodeAll(ChannelInfoRowSchema)

/** The channel, ACL, ban and invite operations of the `Store` port over `access`. */
export const makeChannels = ({ pointReads, query, sql, tx }: SqliteAccess) => {
  // channels ---------------------------------------------------------------------------------------

  const getChannel = (name: string) =>
    Effect.suspend(() => {
      const read = pointReads?.getChannel(name)
      if (read !== undefined) return Effect.succeed(read)
      return Effect.flatMap(query(GET_CHANNEL, [name]), (rows) => firstRow(rows, fastChannel, decodeChannels)).pipe(
        Effect.mapError(toStoreError("getChannel"))
      )
    })

  const createChannel = Effect.fnUntraced(function*(input: {
    readonly name: string
    readonly visibility: Frames.Visibility
    readonly createdBy: string
    readonly now: string
  }) {
    yield* tx(
      Effect.zipRight(
        sql`INSERT INTO channels (name, visibility, created_by, created_at, skeleton)
            VALUES (${input.name}, ${input.visibility}, ${input.createdBy}, ${input.now}, ${
          Skeleton.skeleton(input.name)
        })`,
        sql`INSERT OR IGNORE INTO memberships (channel, user) VALUES (${input.name}, ${input.createdBy})`
      )
    ).pipe(Effect.mapError(toConflict("createChannel", { channel: input.name })))
  })

  const deleteChannel = Effect.fnUntraced(function*(name: string) {
    // memberships, invites, bans and messages go with it (ON DELETE CASCADE); its seq counter stays,
    // so a channel created again under the name never hands out an old seq again
    yield* tx(sql`DELETE FROM channels WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("deleteChannel")))

  const renameChannel = Effect.fnUntraced(function*(name: string, newName: string) {
    // Memberships, invites, bans and messages follow (ON UPDATE CASCADE), messages with their seqs;
    // the new name's counter goes on from the higher of both names' counters (both stay, so neither
    // name hands out a seq twice).
    yield* tx(
      Effect.zipRight(
        sql`UPDATE channels SET name = ${newName}, skeleton = ${Skeleton.skeleton(newName)} WHERE name = ${name}`,
        sql`INSERT INTO channel_seq (channel, last_seq)
            SELECT ${newName}, last_seq FROM channel_seq WHERE channel = ${name}
            ON CONFLICT (channel) DO UPDATE SET last_seq = MAX(channel_seq.last_seq, excluded.last_seq)`
      )
    ).pipe(
      Effect.mapError(toConflict("renameChannel", { channel: newName }))
    )
  })

  const setVisibility = Effect.fnUntraced(function*(name: string, visibility: Frames.Visibility) {
    yield* tx(sql`UPDATE channels SET visibility = ${visibility} WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("setVisibility")))

  const listVisibleChannels = Effect.fnUntraced(function*(user: string, isServerAdmin: boolean) {
    const member = sql`EXISTS (SELECT 1 FROM memberships m WHERE m.channel = c.name AND m.user = ${user})`
    const rows = yield* (isServerAdmin
      ? sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c ORDER BY c.name`
      : sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c
            WHERE c.visibility = 'public' OR ${member} ORDER BY c.name`).pipe(Effect.flatMap(decodeChannelInfos))
    return rows.map((row): Frames.ChannelInfo => ({
      name: row.name,
      visibility: row.visibility,
      member: row.member !== 0
    }))
  }, Effect.mapError(toStoreError("listVisibleChannels")))

  // ACL and bans ---------------------------------------------------------------------------------

  const statements = {
    insertMember: (channel: string, user: string) =>
      sql`INSERT OR IGNORE INTO memberships (channel, user)
          SELECT name, ${user} FROM channels WHERE name = ${channel}`,
    deleteMember: (channel: string, user: string) =>
      sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`,
    insertBan: (channel: string, user: string) =>
      sql`INSERT OR IGNORE INTO bans (channel, user) SELECT name, ${user} FROM channels WHERE name = ${channel}`,
    deleteBan: (channel: string, user: string) => sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`
  }
  const { insertMember } = statements
  const rules = aclRules(statements)

  const isMember = (channel: string, user: string) =>
    query(IS_MEMBER, [channel, user]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("isMember"))
    )

  const addMember = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(insertMember(channel, user))
  }, Effect.mapError(toStoreError("addMember")))

  const aclAdd = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(rules.aclAdd(channel, user))
  }, Effect.mapError(toStoreError("aclAdd")))

  const removeMember = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(statements.deleteMember(channel, user))
  }, Effect.mapError(toStoreError("removeMember")))

  const listMembers = Effect.fnUntraced(function*(channel: string) {
    const rows = yield* sql<{ readonly user: string }>`
      SELECT user FROM memberships WHERE channel = ${channel} ORDER BY user`
    return rows.map((row) => row.user)
  }, Effect.mapError(toStoreError("listMembers")))

  const ban = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(rules.ban(channel, user))
  }, Effect.mapError(toStoreError("ban")))

  const unban = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(statements.deleteBan(channel, user))
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
    getChannel,
    createChannel,
    deleteChannel,
    renameChannel,
    setVisibility,
    listVisibleChannels,
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
