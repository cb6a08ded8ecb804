/**
 * The SQLite store's users, machines and machine offers (SPEC §3.17, issue 22).
 *
 * @internal
 */
import { Skeleton } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SqliteAccess } from "./sqliteChannels.js"
import { FIND_MACHINE_BY_KEY, toConflict, USER_EXISTS } from "./sqliteRows.js"
import { decodeAll, fastMachine, firstRow, MachineRowSchema, toStoreError, UserRowSchema } from "./storeRows.js"
import * as Rules from "./storeRules.js"

const decodeUsers = decodeAll(UserRowSchema)
const decodeMachines = decodeAll(MachineRowSchema)

interface MachineInput {
  readonly user: string
  readonly name: string
  readonly pubkey: string
  readonly now: string
}

/** The user, machine and offer operations of the `Store` port over `access`. */
export const makeIdentity = ({ pointReads, query, sql, tx }: SqliteAccess) => {
  const registerUser = Effect.fnUntraced(function*(input: {
    readonly username: string
    readonly machine: string
    readonly pubkey: string
    readonly now: string
  }) {
    yield* tx(
      Effect.all([
        sql`INSERT INTO users (username, created_at, skeleton)
            VALUES (${input.username}, ${input.now}, ${Skeleton.skeleton(input.username)})`,
        sql`INSERT INTO machines (user, name, pubkey, added_at, skeleton)
            VALUES (${input.username}, ${input.machine}, ${input.pubkey}, ${input.now}, ${
          Skeleton.skeleton(input.machine)
        })`,
        // the key is bound now: offers of it to other users lapse
        sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
      ], { discard: true })
    ).pipe(
      Effect.mapError(toConflict("registerUser", {
        username: input.username,
        pubkey: input.pubkey,
        machine: input.machine
      }))
    )
  })

  const userExists = (username: string) =>
    query(USER_EXISTS, [username]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("userExists"))
    )

  const listUsers = sql`SELECT username, created_at FROM users ORDER BY username`.pipe(
    Effect.flatMap(decodeUsers),
    Effect.map((rows) => rows.map((row) => row.username)),
    Effect.mapError(toStoreError("listUsers")),
    Effect.withSpan("Store.listUsers")
  )

  const removeUser = Effect.fnUntraced(function*(username: string) {
    const deleted = yield* tx(Effect.gen(function*() {
      const channels = yield* sql<{ readonly name: string }>`
        DELETE FROM channels WHERE created_by = ${username} RETURNING name`
      yield* sql`DELETE FROM memberships WHERE user = ${username}`
      yield* sql`DELETE FROM machines WHERE user = ${username}`
      yield* sql`DELETE FROM machine_offers WHERE user = ${username}`
      const author = Rules.removedAuthor(username)
      yield* sql`UPDATE messages SET sender = ${author.replacement} || substr(sender, ${author.prefixLength + 1})
        WHERE substr(sender, 1, ${author.prefixLength}) = ${author.prefix}`
      yield* sql`DELETE FROM users WHERE username = ${username}`
      return channels.map((row) => row.name)
    }))
    return { deletedChannels: deleted }
  }, Effect.mapError(toStoreError("removeUser")))

  const findMachineByKey = (pubkey: string) =>
    Effect.suspend(() => {
      const read = pointReads?.findMachineByKey(pubkey)
      if (read !== undefined) return Effect.succeed(read)
      return Effect.flatMap(query(FIND_MACHINE_BY_KEY, [pubkey]), (rows) => firstRow(rows, fastMachine, decodeMachines))
        .pipe(Effect.mapError(toStoreError("findMachineByKey")))
    })

  const listMachines = Effect.fnUntraced(function*(user: string) {
    // open offers too (issue 22): what `machine add` added, removable with `machine remove`
    return yield* sql`SELECT user, name, pubkey, added_at FROM machines WHERE user = ${user}
      UNION ALL SELECT user, name, pubkey, offered_at AS added_at FROM machine_offers WHERE user = ${user}
      ORDER BY name`.pipe(
      Effect.flatMap(decodeMachines)
    )
  }, Effect.mapError(toStoreError("listMachines")))

  const insertMachine = (input: MachineInput) =>
    sql`INSERT INTO machines (user, name, pubkey, added_at, skeleton)
        VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now}, ${Skeleton.skeleton(input.name)})`

  const addMachine = Effect.fnUntraced(function*(input: MachineInput) {
    yield* tx(Effect.zipRight(insertMachine(input), sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`))
      .pipe(Effect.mapError(toConflict("addMachine", { machine: input.name, pubkey: input.pubkey })))
  })

  const offerMachine = Effect.fnUntraced(function*(input: MachineInput) {
    const skeleton = Skeleton.skeleton(input.name)
    yield* tx(Rules.offerMachine(input, {
      keyBound: Effect.map(sql`SELECT 1 AS found FROM machines WHERE pubkey = ${input.pubkey}`, (r) => r.length > 0),
      keyOffered: Effect.map(
        sql`SELECT 1 AS found FROM machine_offers WHERE user = ${input.user} AND pubkey = ${input.pubkey}`,
        (r) => r.length > 0
      ),
      nameTaken: Effect.map(
        sql`SELECT 1 AS found FROM machines
          WHERE user = ${input.user} AND (name = ${input.name} OR skeleton = ${skeleton})`,
        (r) => r.length > 0
      ),
      insertOffer: sql`INSERT INTO machine_offers (user, name, skeleton, pubkey, offered_at)
        VALUES (${input.user}, ${input.name}, ${skeleton}, ${input.pubkey}, ${input.now})`
    })).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(toConflict("offerMachine", { machine: input.name })(e)))
    )
  })

  const claimMachine = Effect.fnUntraced(function*(input: MachineInput) {
    return yield* tx(Rules.claimMachine({
      offered: Effect.map(
        sql`SELECT 1 AS found FROM machine_offers
          WHERE user = ${input.user} AND name = ${input.name} AND pubkey = ${input.pubkey}`,
        (r) => r.length > 0
      ),
      bind: Effect.zipRight(insertMachine(input), sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`)
    })).pipe(Effect.mapError(toConflict("claimMachine", { machine: input.name, pubkey: input.pubkey })))
  })

  const findOfferByKey = Effect.fnUntraced(function*(pubkey: string) {
    const rows = yield* sql<{ readonly user: string; readonly name: string }>`
      SELECT user, name FROM machine_offers WHERE pubkey = ${pubkey} ORDER BY offered_at, user LIMIT 1`
    return Option.fromNullable(rows[0]).pipe(Option.map((row) => ({ user: String(row.user), name: String(row.name) })))
  }, Effect.mapError(toStoreError("findOfferByKey")))

  const removeMachine = Effect.fnUntraced(function*(user: string, name: string) {
    yield* tx(Effect.zipRight(
      sql`DELETE FROM machines WHERE user = ${user} AND name = ${name}`,
      sql`DELETE FROM machine_offers WHERE user = ${user} AND name = ${name}`
    ))
  }, Effect.mapError(toStoreError("removeMachine")))

  return {
    registerUser,
    userExists,
    listUsers,
    removeUser,
    findMachineByKey,
    listMachines,
    addMachine,
    offerMachine,
    claimMachine,
    findOfferByKey,
    removeMachine
  }
}
