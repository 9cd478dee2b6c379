/**
 * The dashboard's only way to the server: an `HttpApiClient` derived from the server's own route
 * groups (a route changed there breaks this build, not the page), with the bearer token when one
 * is set. `call` runs one request and reports it as an `Outcome`, and tells `Connection` whether
 * the server answered, refused the token, or could not be reached.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { CursorsGroup } from "@keel/server/CursorsApi"
import { DashboardGroup } from "@keel/server/DashboardApi"
import { QueuesGroup } from "@keel/server/QueuesApi"
import { ReservationsGroup } from "@keel/server/ReservationsApi"
import { SchedulesGroup } from "@keel/server/SchedulesApi"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Connection from "./Connection.js"

/** The routes the dashboard uses, exactly as the server declares them (the event log is not shown). */
export class DashboardApi extends HttpApi.make("keel")
  .add(QueuesGroup)
  .add(ReservationsGroup)
  .add(CursorsGroup)
  .add(SchedulesGroup)
  .add(DashboardGroup) {}

const makeClient = (token: string | null) =>
  HttpApiClient.make(DashboardApi, {
    baseUrl: window.location.origin,
    transformClient: (client) =>
      token === null ? client : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(token))
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** The typed client. */
export type Client = Effect.Effect.Success<ReturnType<typeof makeClient>>

/** How one request ended: its value, or why not in words (the API's own message when it refused). */
export type Outcome<A> =
  | { readonly ok: true; readonly value: A }
  | {
      readonly ok: false
      readonly message: string
      readonly unauthorized: boolean
      readonly offline: boolean
    }

let client: Client = Effect.runSync(makeClient(Connection.token()))

/** Uses `token` (or none) for every later request. */
export const authenticate = (token: string | null): void => {
  Connection.setToken(token)
  client = Effect.runSync(makeClient(token))
}

const statusOf = (error: unknown): number | undefined =>
  Predicate.hasProperty(error, "response") &&
  Predicate.hasProperty(error.response, "status") &&
  typeof error.response.status === "number"
    ? error.response.status
    : undefined

const messageOf = (error: unknown): string => {
  if (Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== "") {
    return error.message
  }
  return Predicate.hasProperty(error, "_tag") ? String(error._tag) : String(error)
}

/** Runs one request; `Connection` learns whether the server answered. */
export const call = async <A, E>(request: (client: Client) => Effect.Effect<A, E>): Promise<Outcome<A>> => {
  const exit = await Effect.runPromiseExit(request(client))
  if (Exit.isSuccess(exit)) {
    Connection.report("online")
    return { ok: true, value: exit.value }
  }
  const failure = Cause.failureOption(exit.cause)
  const error: unknown = Option.isSome(failure) ? failure.value : Cause.squash(exit.cause)
  const status = statusOf(error)
  const offline = Predicate.isTagged(error, "RequestError")
  const unauthorized = status === 401
  Connection.report(offline ? "lost" : unauthorized ? "unauthorized" : "online")
  const message = offline
    ? "The server cannot be reached."
    : unauthorized
      ? "The token was refused."
      : messageOf(error)
  return { ok: false, message, unauthorized, offline }
}
