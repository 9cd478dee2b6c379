/**
 * The reservation workload through Keel's registry (`@keel/reservation`), called from plain async
 * code through a `ManagedRuntime`. Kept apart from `workload.ts` so that raw-driver processes never
 * load Effect (their peak RSS is their own).
 */
import { mkdirSync } from "node:fs"
import * as Reservation from "@keel/reservation/Reservation"
import * as ReservationConfig from "@keel/reservation/ReservationConfig"
import * as Database from "@keel/sql/Database"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { type Client, range, tag } from "./workload.js"

/** The registry config of the benchmark: its range, occupancy probing on or off. */
export const benchConfig = (occupancy: boolean) =>
  Effect.runPromise(ReservationConfig.decode({ range: { ...range }, occupancy: { enabled: occupancy } }))

/**
 * A Keel client over `dsn`; `directory` (created if needed) is the reservations' path.
 * `busyTimeoutMs` overrides Keel's SQLite busy_timeout (20 ms by default).
 */
export const keel = async (
  dsn: string,
  directory: string,
  occupancy: boolean,
  busyTimeoutMs?: number
): Promise<Client> => {
  mkdirSync(directory, { recursive: true })
  const config = await benchConfig(occupancy)
  const runtime = ManagedRuntime.make(
    Layer.provide(
      Reservation.layer(config),
      Database.layer(dsn, {
        maxConnections: 2,
        ...(busyTimeoutMs === undefined ? {} : { busyTimeout: Duration.millis(busyTimeoutMs) })
      })
    )
  )
  const registry = await runtime.runPromise(Reservation.Reservations)
  return {
    once: () =>
      runtime.runPromise(
        Effect.asVoid(
          Effect.zipRight(
            registry.reserve({ path: directory, cwd: directory, tag }),
            registry.release({ path: directory, cwd: directory, tag })
          )
        )
      ),
    close: () => runtime.dispose()
  }
}
