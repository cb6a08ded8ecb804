import { tempDir } from "@conclave/testkit"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer } from "effect"
import * as path from "node:path"
import * as SqliteStore from "../src/SqliteStore.js"
import { Store } from "../src/Store.js"
import { describeStore, type StoreFactory, type Subject } from "./support/StoreConformance.js"
import { describeScrollBack } from "./support/StoreScrollBack.js"

const dbFile = Effect.map(tempDir("conclave-store-"), (dir) => path.join(dir, "conclave.db"))

const subject = (filename: string) =>
  Layer.build(SqliteStore.layerClient.pipe(Layer.provideMerge(SqliteStore.layerSqlite({ filename })))).pipe(
    Effect.map((ctx): Subject => {
      const sql = Context.get(ctx, SqlClient.SqlClient)
      return {
        store: Context.get(ctx, Store),
        insertRawMessage: (row) =>
          sql`INSERT INTO channel_seq (channel, last_seq) VALUES (${row.channel}, 1)
              ON CONFLICT (channel) DO UPDATE SET last_seq = last_seq + 1`.pipe(
            Effect.zipRight(
              sql`INSERT INTO messages (channel, seq, sender, payload, ts_ms, origin, reply_to)
                  VALUES (${row.channel}, (SELECT last_seq FROM channel_seq WHERE channel = ${row.channel}),
                          ${row.sender}, ${row.payload}, ${row.ts_ms}, ${row.origin}, ${row.reply_to})`
            )
          ),
        enrollCodes: sql<{ code_hash: unknown; username: unknown; expires_at_ms: unknown }>`
          SELECT * FROM enroll_codes ORDER BY code_hash`,
        countRows: (table, channel) =>
          Effect.map(
            channel === undefined
              ? sql<{ n: unknown }>`SELECT count(*) AS n FROM ${sql(table)}`
              : sql<{ n: unknown }>`SELECT count(*) AS n FROM ${sql(table)} WHERE channel = ${channel}`,
            (rows) => Number(rows[0]?.n)
          )
      }
    })
  )

const file: StoreFactory = {
  fresh: Effect.flatMap(dbFile, subject),
  database: Effect.map(
    dbFile,
    (filename) => Layer.build(SqliteStore.layer({ filename })).pipe(Effect.map((ctx) => Context.get(ctx, Store)))
  ),
  seqPerChannel: true
}
const memory: StoreFactory = { fresh: subject(":memory:"), database: undefined, seqPerChannel: true }

describeStore("SQLite (file)", file)
describeStore("SQLite (memory)", memory)
describeScrollBack("SQLite (file)", file)
describeScrollBack("SQLite (memory)", memory)
