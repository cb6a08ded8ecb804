/**
 * The PostgreSQL store's users, machines and machine offers (SPEC §3.17, issue 22).
 *
 * @internal
 */
import { Skeleton } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { StoreError } from "../Store.js"
import { OPERATION_TIMEOUT, type PgAccess } from "./pgAccess.js"
import { FIND_MACHINE_BY_KEY, toConflict, USER_EXISTS } from "./pgRows.js"
import { decodeAll, fastMachine, firstRow, MachineRowSchema, UserRowSchema } from "./storeRows.js"
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
export const makeIdentity = ({ guard, guardConflict, query, sql, tx }: PgAccess) => {
  const registerUser = (input: {
    readonly username: string
    readonly machine: string
    readonly pubkey: string
    readonly now: string
  }) =>
    tx(
      Effect.all([
        sql`INSERT INTO users (username, created_at, skeleton)
            VALUES (${input.username}, ${input.now}, ${Skeleton.skeleton(input.username)})`,
        sql`INSERT INTO machines (username, name, pubkey, added_at, skeleton)
            VALUES (${input.username}, ${input.machine}, ${input.pubkey}, ${input.now}, ${
          Skeleton.skeleton(input.machine)
        })`,
        // the key is bound now: offers of it to other users lapse
        sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
      ], { discard: true })
    ).pipe(
      Effect.asVoid,
      guardConflict("registerUser", { username: input.username, pubkey: input.pubkey, machine: input.machine })
    )

  const userExists = (username: string) =>
    query(USER_EXISTS, [username]).pipe(Effect.map((rows) => rows.length > 0), guard("userExists"))

  const listUsers = sql`SELECT username, created_at FROM users ORDER BY username`.pipe(
    Effect.flatMap(decodeUsers),
    Effect.map((rows) => rows.map((row) => row.username)),
    guard("listUsers")
  )

  const removeUser = (username: string) =>
    tx(Effect.gen(function*() {
      const channels = yield* sql<{ readonly name: string }>`
        DELETE FROM channels WHERE created_by = ${username} RETURNING name`
      yield* sql`DELETE FROM memberships WHERE username = ${username}`
      yield* sql`DELETE FROM machines WHERE username = ${username}`
      yield* sql`DELETE FROM machine_offers WHERE username = ${username}`
      const author = Rules.removedAuthor(username)
      yield* sql`UPDATE messages SET sender = ${author.replacement} || substr(sender, ${author.prefixLength + 1})
        WHERE substr(sender, 1, ${author.prefixLength}) = ${author.prefix}`
      yield* sql`DELETE FROM users WHERE username = ${username}`
      return { deletedChannels: channels.map((row) => row.name) }
    })).pipe(guard("removeUser"))

  const findMachineByKey = (pubkey: string) =>
    Effect.flatMap(query(FIND_MACHINE_BY_KEY, [pubkey]), (rows) => firstRow(rows, fastMachine, decodeMachines)).pipe(
      guard("findMachineByKey")
    )

  const listMachines = (user: string) =>
    // open offers too (issue 22): what `machine add` added, removable with `machine remove`
    sql`SELECT username AS user, name, pubkey, added_at FROM machines WHERE username = ${user}
      UNION ALL SELECT username AS user, name, pubkey, offered_at AS added_at FROM machine_offers WHERE username = ${user}
      ORDER BY name`.pipe(
      Effect.flatMap(decodeMachines),
      guard("listMachines")
    )

  const insertMachine = (input: MachineInput) =>
    sql`INSERT INTO machines (username, name, pubkey, added_at, skeleton)
        VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now}, ${Skeleton.skeleton(input.name)})`

  const addMachine = (input: MachineInput) =>
    tx(Effect.zipRight(insertMachine(input), sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`)).pipe(
      Effect.asVoid,
      guardConflict("addMachine", { machine: input.name, pubkey: input.pubkey })
    )

  const offerMachine = (input: MachineInput) => {
    const skeleton = Skeleton.skeleton(input.name)
    return tx(Rules.offerMachine(input, {
      keyBound: Effect.map(sql`SELECT 1 AS found FROM machines WHERE pubkey = ${input.pubkey}`, (r) => r.length > 0),
      keyOffered: Effect.map(
        sql`SELECT 1 AS found FROM machine_offers WHERE username = ${input.user} AND pubkey = ${input.pubkey}`,
        (r) => r.length > 0
      ),
      nameTaken: Effect.map(
        sql`SELECT 1 AS found FROM machines
          WHERE username = ${input.user} AND (name = ${input.name} OR skeleton = ${skeleton})`,
        (r) => r.length > 0
      ),
      insertOffer: sql`INSERT INTO machine_offers (username, name, skeleton, pubkey, offered_at)
        VALUES (${input.user}, ${input.name}, ${skeleton}, ${input.pubkey}, ${input.now})`
    })).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(toConflict("offerMachine", { machine: input.name })(e))),
      Effect.timeoutFail({
        duration: OPERATION_TIMEOUT,
        onTimeout: () => new StoreError({ operation: "offerMachine", cause: "timed out" })
      })
    )
  }

  const claimMachine = (input: MachineInput) =>
    tx(Rules.claimMachine({
      offered: Effect.map(
        sql`SELECT 1 AS found FROM machine_offers
          WHERE username = ${input.user} AND name = ${input.name} AND pubkey = ${input.pubkey}`,
        (r) => r.length > 0
      ),
      bind: Effect.zipRight(insertMachine(input), sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`)
    })).pipe(guardConflict("claimMachine", { machine: input.name, pubkey: input.pubkey }))

  const findOfferByKey = (pubkey: string) =>
    sql<{ readonly username: unknown; readonly name: unknown }>`
      SELECT username, name FROM machine_offers WHERE pubkey = ${pubkey} ORDER BY offered_at, username LIMIT 1`.pipe(
      Effect.map((rows) =>
        Option.fromNullable(rows[0]).pipe(Option.map((row) => ({ user: String(row.username), name: String(row.name) })))
      ),
      guard("findOfferByKey")
    )

  const removeMachine = (user: string, name: string) =>
    tx(Effect.zipRight(
      sql`DELETE FROM machines WHERE username = ${user} AND name = ${name}`,
      sql`DELETE FROM machine_offers WHERE username = ${user} AND name = ${name}`
    )).pipe(Effect.asVoid, guard("removeMachine"))

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
