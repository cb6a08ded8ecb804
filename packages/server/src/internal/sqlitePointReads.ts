/**
 * Point reads on a second, read-only SQLite connection, for the reads every handshake and join make.
 *
 * @internal
 */
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { FIND_MACHINE_BY_KEY, GET_CHANNEL } from "./sqliteRows.js"
import { type ChannelRowSchema, fastChannel, fastMachine, type MachineRowSchema } from "./storeRows.js"

/** A database file path (not `:memory:`, a temporary database or a URI): another connection can open it. */
export const isSharedFile = (filename: string) =>
  filename !== "" && filename !== ":memory:" && !filename.startsWith("file:")

/**
 * Point reads of committed rows, each `undefined` when it could not read (never throws).
 */
export interface PointReads {
  readonly findMachineByKey: (pubkey: string) => Option.Option<typeof MachineRowSchema.Type> | undefined
  readonly getChannel: (name: string) => Option.Option<typeof ChannelRowSchema.Type> | undefined
}

/**
 * Point reads on a second, read-only connection to the same file, for the reads every handshake and
 * join make. In WAL mode it reads the last committed state without waiting for the writer (whose
 * group commits hold the client's connection), and never blocks: a busy database (`timeout: 0`) or
 * any other failure answers `undefined`, and the read goes through the client. None for a database
 * only the client's own connection can see (`:memory:`).
 */
export const openPointReads = (
  client: Option.Option<SqliteClient.SqliteClient>
): Effect.Effect<PointReads | undefined, never, Scope.Scope> => {
  if (Option.isNone(client) || !isSharedFile(client.value.config.filename)) return Effect.succeed(undefined)
  const filename = client.value.config.filename
  return Effect.acquireRelease(
    Effect.try(() => new Sqlite(filename, { readonly: true, fileMustExist: true, timeout: 0 })),
    (db) => Effect.sync(() => db.close())
  ).pipe(
    Effect.map((db): PointReads => {
      const pointRead = <A>(statement: string, fast: (row: unknown) => A | undefined) => {
        const prepared = db.prepare<[string], unknown>(statement)
        return (key: string): Option.Option<A> | undefined => {
          try {
            const row = prepared.get(key)
            if (row === undefined) return Option.none()
            const value = fast(row)
            return value === undefined ? undefined : Option.some(value)
          } catch {
            return undefined
          }
        }
      }
      return {
        findMachineByKey: pointRead(FIND_MACHINE_BY_KEY, fastMachine),
        getChannel: pointRead(GET_CHANNEL, fastChannel)
      }
    }),
    Effect.tapError((cause) =>
      Effect.logDebug("no read-only connection").pipe(Effect.annotateLogs({ cause: String(cause.error) }))
    ),
    Effect.orElseSucceed(() => undefined)
  )
}
