import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { makeTokenBucket, RegisterLimiter } from "../src/RateLimit.js"
import * as ServerConfig from "../src/ServerConfig.js"

describe("RateLimit", () => {
  it.effect("the token bucket allows a burst, then refills at the rate (D-10)", () =>
    Effect.gen(function*() {
      const bucket = yield* makeTokenBucket(2, 20)
      for (let i = 0; i < 20; i++) assert.strictEqual(yield* bucket.take, 0)
      const wait = yield* bucket.take
      assert.strictEqual(wait, 500)
      yield* TestClock.adjust("499 millis")
      assert.isAbove(yield* bucket.take, 0)
      yield* TestClock.adjust("2 millis")
      assert.strictEqual(yield* bucket.take, 0)
      // refill never exceeds the burst
      yield* TestClock.adjust("1 hour")
      for (let i = 0; i < 20; i++) assert.strictEqual(yield* bucket.take, 0)
      assert.isAbove(yield* bucket.take, 0)
    }))

  it.effect("takeAt (the synchronous path) shares the bucket with take; a clock step back refills nothing", () =>
    Effect.gen(function*() {
      const bucket = yield* makeTokenBucket(1, 2)
      assert.strictEqual(bucket.takeAt(0), 0)
      assert.strictEqual(yield* bucket.take, 0)
      assert.strictEqual(bucket.takeAt(0), 1000)
      assert.strictEqual(bucket.takeAt(-5000), 1000, "an earlier time adds no tokens")
      assert.isAbove(bucket.takeAt(999), 0)
      assert.strictEqual(bucket.takeAt(1000), 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* bucket.take, 1000, "the token taken at 1000 ms is gone for take too")
    }))

  it.effect("rate 0 disables the bucket", () =>
    Effect.gen(function*() {
      const bucket = yield* makeTokenBucket(0, 1)
      for (let i = 0; i < 100; i++) assert.strictEqual(yield* bucket.take, 0)
    }))

  it.effect("costly handshake failures are capped per address per minute; checking records nothing", () =>
    Effect.gen(function*() {
      const limiter = yield* RegisterLimiter
      for (let i = 0; i < 1000; i++) assert.isUndefined(limiter.blocked("1.2.3.4"))
      for (let i = 0; i < 30; i++) limiter.charge("1.2.3.4")
      assert.strictEqual(limiter.blocked("1.2.3.4"), 60_000)
      assert.isUndefined(limiter.blocked("5.6.7.8"))
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(limiter.blocked("1.2.3.4"), 30_000)
      yield* TestClock.adjust("31 seconds")
      assert.isUndefined(limiter.blocked("1.2.3.4"))
    }).pipe(Effect.provide(RegisterLimiter.Default), Effect.provide(ServerConfig.layer())))

  it.effect("registerLimitPerMinute 0 is unlimited", () =>
    Effect.gen(function*() {
      const limiter = yield* RegisterLimiter
      for (let i = 0; i < 100; i++) limiter.charge("1.2.3.4")
      assert.isUndefined(limiter.blocked("1.2.3.4"))
    }).pipe(Effect.provide(RegisterLimiter.Default), Effect.provide(ServerConfig.layer({ registerLimitPerMinute: 0 }))))
})
