/**
 * The PostgreSQL store's channels, their ACL, bans and invites (SPEC §3.7, §3.12, §3.13).
 *
 * @internal
 */
import { type Frames, Skeleton } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { InviteRow } from "../Store.js"
import type { PgAccess } from "./pgAccess.js"
import { ChannelInfoRowSchema, GET_CHANNEL, IS_MEMBER } from "./pgRows.js"
import {
  ChannelRowSchema,
  decodeAll,
  fastChannel,
  firstRow,
  InviteRowSchema,
  redeemInvite as redeemIn
} from "./storeRows.js"
import { aclRules } from "./storeRules.js"

const decodeChannels = decodeAll(ChannelRowSchema)
const decodeInvites = decodeAll(InviteRowSchema)
const decodeChannelInfos = decodeAll(ChannelInfoRowSchema)

/** The channel, ACL, ban and invite operations of the `Store` port over `access`. */
export const makeChannels = ({ guard, guardConflict, query, sql, tx }: PgAccess) => {
  // channels ---------------------------------------------------------------------------------------

  const getChannel = (name: string) =>
    Effect.flatMap(query(GET_CHANNEL, [name]), (rows) => firstRow(rows, fastChannel, decodeChannels)).pipe(
      guard("getChannel")
    )

  const createChannel = (input: {
    readonly name: string
    readonly visibility: Frames.Visibility
    readonly createdBy: string
    readonly now: string
  }) =>
    tx(
      Effect.zipRight(
        sql`INSERT INTO channels (name, visibility, created_by, created_at, skeleton)
            VALUES (${input.name}, ${input.visibility}, ${input.createdBy}, ${input.now}, ${
          Skeleton.skeleton(input.name)
        })`,
        sql`INSERT INTO memberships (channel, username) VALUES (${input.name}, ${input.createdBy})
            ON CONFLICT DO NOTHING`
      )
    ).pipe(Effect.asVoid, guardConflict("createChannel", { channel: input.name }))

  // memberships, invites, bans and messages go with it (ON DELETE CASCADE); its seq counter stays
  const deleteChannel = (name: string) =>
    sql`DELETE FROM channels WHERE name = ${name}`.pipe(Effect.asVoid, guard("deleteChannel"))

  // Memberships, invites, bans and messages follow (ON UPDATE CASCADE), messages with their seqs;
  // the new name's counter goes on from the higher of both names' counters (both stay, so neither
  // name hands out a seq twice).
  const renameChannel = (name: string, newName: string) =>
    tx(
      Effect.zipRight(
        sql`UPDATE channels SET name = ${newName}, skeleton = ${Skeleton.skeleton(newName)} WHERE name = ${name}`,
        sql`INSERT INTO channel_seq (channel, last_seq)
            SELECT ${newName}, last_seq FROM channel_seq WHERE channel = ${name}
            ON CONFLICT (channel) DO UPDATE SET last_seq = GREATEST(channel_seq.last_seq, EXCLUDED.last_seq)`
      )
    ).pipe(Effect.asVoid, guardConflict("renameChannel", { channel: newName }))

  const setVisibility = (name: string, visibility: Frames.Visibility) =>
    sql`UPDATE channels SET visibility = ${visibility} WHERE name = ${name}`.pipe(
      Effect.asVoid,
      guard("setVisibility")
    )

  const listVisibleChannels = (user: string, isServerAdmin: boolean) => {
    const member = sql`EXISTS (SELECT 1 FROM memberships m WHERE m.channel = c.name AND m.username = ${user})`
    return (isServerAdmin
      ? sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c ORDER BY c.name`
      : sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c
            WHERE c.visibility = 'public' OR ${member} ORDER BY c.name`).pipe(
        Effect.flatMap(decodeChannelInfos),
        Effect.map((rows) =>
          rows.map((row): Frames.ChannelInfo => ({ name: row.name, visibility: row.visibility, member: row.member }))
        ),
        guard("listVisibleChannels")
      )
  }

  // ACL and bans -------------------------------------------------------------------------------------

  const statements = {
    insertMember: (channel: string, user: string) =>
      sql`INSERT INTO memberships (channel, username)
          SELECT name, ${user} FROM channels WHERE name = ${channel} ON CONFLICT DO NOTHING`,
    deleteMember: (channel: string, user: string) =>
      sql`DELETE FROM memberships WHERE channel = ${channel} AND username = ${user}`,
    insertBan: (channel: string, user: string) =>
      sql`INSERT INTO bans (channel, username) SELECT name, ${user} FROM channels WHERE name = ${channel}
          ON CONFLICT DO NOTHING`,
    deleteBan: (channel: string, user: string) =>
      sql`DELETE FROM bans WHERE channel = ${channel} AND username = ${user}`
  }
  const rules = aclRules(statements)

  const isMember = (channel: string, user: string) =>
    query(IS_MEMBER, [channel, user]).pipe(Effect.map((rows) => rows.length > 0), guard("isMember"))

  const addMember = (channel: string, user: string) =>
    statements.insertMember(channel, user).pipe(Effect.asVoid, guard("addMember"))

  const aclAdd = (channel: string, user: string) => tx(rules.aclAdd(channel, user)).pipe(guard("aclAdd"))

  const removeMember = (channel: string, user: string) =>
    statements.deleteMember(channel, user).pipe(Effect.asVoid, guard("removeMember"))

  const listMembers = (channel: string) =>
    sql<{ readonly username: string }>`
      SELECT username FROM memberships WHERE channel = ${channel} ORDER BY username`.pipe(
      Effect.map((rows) => rows.map((row) => row.username)),
      guard("listMembers")
    )

  const ban = (channel: string, user: string) => tx(rules.ban(channel, user)).pipe(guard("ban"))

  const unban = (channel: string, user: string) =>
    statements.deleteBan(channel, user).pipe(Effect.asVoid, guard("unban"))

  const listBans = (channel: string) =>
    sql<{ readonly username: string }>`SELECT username FROM bans WHERE channel = ${channel} ORDER BY username`.pipe(
      Effect.map((rows) => rows.map((row) => row.username)),
      guard("listBans")
    )

  const allBans = sql<{ readonly channel: string; readonly username: string }>`
    SELECT channel, username FROM bans ORDER BY channel, username`.pipe(
    Effect.map((rows) => rows.map((row) => ({ channel: row.channel, user: row.username }))),
    guard("allBans")
  )

  // invites ----------------------------------------------------------------------------------------

  const createInvite = (row: InviteRow) =>
    sql`INSERT INTO invites (token, channel, uses_remaining, expires_at, created_by)
        VALUES (${row.token}, ${row.channel}, ${row.uses_remaining}, ${row.expires_at}, ${row.created_by})`.pipe(
      Effect.asVoid,
      guard("createInvite")
    )

  const inviteColumns = sql.literal("token, channel, uses_remaining, expires_at, created_by")

  const getInvite = (token: string) =>
    sql`SELECT ${inviteColumns} FROM invites WHERE token = ${token}`.pipe(
      Effect.flatMap(decodeInvites),
      Effect.map((rows) => Option.fromNullable(rows[0])),
      guard("getInvite")
    )

  const deleteInvite = (token: string) =>
    sql`DELETE FROM invites WHERE token = ${token}`.pipe(Effect.asVoid, guard("deleteInvite"))

  const listInvites = (channel: string) =>
    sql`SELECT ${inviteColumns} FROM invites WHERE channel = ${channel} ORDER BY token`.pipe(
      Effect.flatMap(decodeInvites),
      guard("listInvites")
    )

  // Single use under concurrency: the decrement is a conditional UPDATE, and concurrent redeemers
  // queue on the invite's row lock; once the holder commits, the next re-checks the row as
  // committed (spent, or deleted) and gets no row back.
  const redeemInvite = (input: {
    readonly token: string
    readonly channel: string
    readonly user: string
    readonly nowMs: number
  }) => tx(redeemIn(sql, statements.insertMember, input)).pipe(guard("redeemInvite"))

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
