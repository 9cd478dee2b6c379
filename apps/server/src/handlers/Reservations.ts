/**
 * The `reservations` routes: each calls the registry and returns what it returned. Over HTTP the
 * caller's working directory (`cwd`) is optional; without it the path is its own working
 * directory, so the unrelated-path guard (meant for a shell's cwd) does not apply. Port info
 * probes occupancy only when asked and when the server's registry checks occupancy at all.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Inventory from "@keel/reservation/Inventory"
import * as Reservation from "@keel/reservation/Reservation"
import * as Effect from "effect/Effect"
import { KeelApi } from "../Api.js"

/** The `reservations` group. */
export const layer = HttpApiBuilder.group(KeelApi, "reservations", (handlers) =>
  Effect.gen(function* () {
    const registry = yield* Reservation.Reservations
    return handlers
      .handle("reserve", ({ payload }) => registry.reserve({ ...payload, cwd: payload.cwd ?? payload.path }))
      .handle("reserveGroup", ({ payload }) =>
        registry.reserveGroup({ ...payload, cwd: payload.cwd ?? payload.path })
      )
      .handle("release", ({ payload }) => registry.release({ ...payload, cwd: payload.cwd ?? payload.path }))
      .handle("list", ({ urlParams }) =>
        Effect.map(registry.list(urlParams), (reservations) => ({ reservations }))
      )
      .handle("show", ({ urlParams }) => registry.show(urlParams))
      .handle("showPort", ({ path }) => registry.showPort({ port: path.port }))
      .handle("portInfo", ({ path, urlParams }) =>
        Inventory.portInfo(registry, path.port, {
          occupancy: urlParams.occupancy === true && registry.config.occupancy.enabled
        })
      )
      .handle("projects", () => Inventory.projects(registry))
      .handle("migrate", ({ payload }) => registry.migrate(payload))
      .handle("cleanup", ({ payload }) => registry.cleanup(payload))
  })
)
