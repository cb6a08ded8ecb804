import { defineProject, mergeConfig } from "vitest/config"
import shared from "../../vitest.shared.js"

export default mergeConfig(
  shared,
  defineProject({ test: { name: "console", testTimeout: 180_000, hookTimeout: 60_000, fileParallelism: false } })
)
