// Regenerates protocol.schema.json from the Schema definitions: `npm run generate -w @conclave/protocol`.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { document } from "../src/JsonSchema.js"

const target = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "protocol.schema.json")
fs.writeFileSync(target, document())
process.stdout.write(`wrote ${target}\n`)
