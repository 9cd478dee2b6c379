/** The reservation registry a command opens (`keel port …`). */
import * as Reservation from "@keel/reservation/Reservation"
import * as Layer from "effect/Layer"
import type * as Globals from "../GlobalOptions.js"
import { database } from "./Database.js"

/** The reservation registry (config from `KEEL_RESERVATION_CONFIG`) over the database. */
export const reservations: Layer.Layer<
  Reservation.Reservations,
  Layer.Layer.Error<typeof Reservation.layerConfig> | Layer.Layer.Error<typeof database>,
  Globals.Globals
> = Layer.provide(Reservation.layerConfig, database)
