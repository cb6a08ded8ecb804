#!/usr/bin/env node
// One conformance suite, three deployments (issue 17): the server's behaviour tests, unchanged,
// against SQLite on one node, one node on PostgreSQL + NATS, and three nodes on PostgreSQL + NATS
// behind a round-robin TCP load balancer (each test's clients spread over the nodes). The choice
// reaches the tests as CONCLAVE_TEST_DEPLOYMENT (packages/testkit/src/Server.ts).
// Usage: node scripts/deployments.mjs [sqlite|postgres|cluster ...]
import { spawnSync } from "node:child_process"

const files = [
  "packages/server/test/Channels.test.ts",
  "packages/server/test/Enrollment.test.ts",
  "packages/server/test/Handshake.test.ts",
  "packages/server/test/Hardening.test.ts",
  "packages/server/test/Invites.test.ts",
  "packages/server/test/Messaging.test.ts",
  "packages/server/test/Moderation.test.ts",
  "packages/server/test/Ordering.test.ts",
  "packages/server/test/ScrollBack.test.ts",
  "packages/server/test/Transport.test.ts"
]
const deployments = process.argv.length > 2 ? process.argv.slice(2) : ["sqlite", "postgres", "cluster"]
let failed = []
for (const deployment of deployments) {
  console.log(`\n== deployment: ${deployment}`)
  const run = spawnSync("npx", ["vitest", "run", ...files], {
    stdio: "inherit",
    env: { ...process.env, CONCLAVE_TEST_DEPLOYMENT: deployment }
  })
  if (run.status !== 0) failed.push(deployment)
}
if (failed.length > 0) {
  console.error(`\nfailed on: ${failed.join(", ")}`)
  process.exit(1)
}
console.log(`\nall behaviour tests passed on: ${deployments.join(", ")}`)
