/**
 * A child process that reserves ports the way `keel port reserve` does — the reservation registry
 * (`Keel.reservations`) over the database (`Keel.database`), the CLI's own layers — for the test of
 * a server and other processes sharing one database. Reserves `KEEL_TEST_COUNT` tags for the
 * directory `KEEL_TEST_PATH` (after `KEEL_START_AT`), one call each, and prints the ports as JSON.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Reservation } from "@keel/reservation"
import { Processes } from "@keel/testkit"
import { Config, Effect, Layer } from "effect"
import * as Keel from "../../src/Keel.js"

const program = Effect.gen(function* () {
  const path = yield* Config.string("KEEL_TEST_PATH")
  const count = yield* Config.integer("KEEL_TEST_COUNT")
  const index = yield* Config.string("KEEL_CHILD_INDEX")
  const registry = yield* Reservation.Reservations
  yield* Processes.waitForStart
  const ports = yield* Effect.forEach(
    Array.from({ length: count }, (_, call) => call),
    (call) =>
      Effect.map(
        registry.reserve({ path, cwd: path, tag: `child-${index}-${call}` }),
        (reserved) => reserved.reservation.port
      )
  )
  yield* Effect.sync(() => process.stdout.write(JSON.stringify(ports)))
})

const layer = Layer.provide(
  Keel.reservations,
  Layer.unwrapEffect(Effect.map(Keel.resolveDsn(), Keel.database))
)

NodeRuntime.runMain(Effect.provide(program, layer))
