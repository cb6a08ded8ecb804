/**
 * @conclave/testkit — the one test kit of every conclave package: a protocol client (`Client`), the
 * server recipe (`Server`), temp dirs (`TempDir`), frame checks (`Assert`) and bounded waits (`Wait`).
 * The scale-out backends (`@conclave/testkit/Backends`) are not re-exported: importing them probes
 * PostgreSQL and NATS.
 *
 * @since 0.1.0
 */
export * from "./Assert.js"
export * from "./Client.js"
export * from "./Server.js"
export * from "./TempDir.js"
export * from "./Wait.js"
