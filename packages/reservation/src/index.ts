/** @keel/reservation: port reservations keyed by (path, tag) that two processes can never share. */
export * as Allocator from "./Allocator.js"
export * as Occupancy from "./Occupancy.js"
export * as Port from "./Port.js"
export * as Reservation from "./Reservation.js"
export * as ReservationConfig from "./ReservationConfig.js"
export * as ReservationError from "./ReservationError.js"
export * as Schemas from "./Schemas.js"
