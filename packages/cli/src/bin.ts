/**
 * The `conclave` executable (`bin/conclave.js` imports this file).
 *
 * @since 0.1.0
 */
import { main } from "./Main.js"

main()
