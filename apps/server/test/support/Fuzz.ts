/**
 * Hostile requests for one route, generated from its own Schemas with Effect's `Arbitrary` and
 * fast-check: path parameters and query strings valid for the route's schemas, known names,
 * hostile and raw values; bodies from `Bodies` (valid and mutated), declared with right and wrong
 * content types, framed by length or in chunks; hostile headers (oversized, duplicated framing,
 * control characters, `Expect`, `Upgrade`…) and request lines (other and invalid methods,
 * absolute-form, other versions). A `Case` is the exact bytes written, printed on failure.
 */
import { FastCheck as fc, Option, Predicate, SchemaAST } from "effect"
import { maxReadWaitMs } from "../../src/Api.js"
import { bodies, encoded, type Labelled, labelled, nastyStrings } from "./Bodies.js"
import * as RawHttp from "./RawHttp.js"
import { fill, type Route } from "./Routes.js"

/** Names that exist on the fuzzed server, so some requests get past "not found". */
export interface Known {
  readonly queue: string
  readonly peer: string
}

/** One request. */
export interface Case {
  readonly route: string
  /** What was mutated, e.g. `body:wrong-type query:valid header:expect`. */
  readonly kind: string
  readonly bytes: Buffer
  readonly head: boolean
  /** The longest the server may take to answer. */
  readonly timeoutMs: number
}

/** How long any request may take to be answered (a long-poll `read` adds its wait). */
export const answerWithinMs = 5_000

/** Routes that may wait as long as the request says before they answer (at most `maxReadWaitMs`). */
const longPolls: ReadonlySet<string> = new Set(["queues.read", "events.queue", "events.all"])

// ---------------------------------------------------------------------------------------------
// Path parameters, query strings, headers, request lines
// ---------------------------------------------------------------------------------------------

/** `encodeURIComponent`, also for lone surrogates (sent as U+FFFD, as a client library would). */
const percent = (value: string): string => encodeURIComponent(Buffer.from(value, "utf8").toString("utf8"))

const rawParams: ReadonlyArray<string> = [
  "%",
  "%FF",
  "%zz",
  "%00",
  "..",
  ".",
  "%2e%2e",
  "a%2Fb",
  "%C0%AF",
  "%ED%A0%80",
  "x".repeat(5_000)
]

/** A value for each path parameter: valid for its schema, a known name, hostile, or raw bytes. */
const paramsOf = (route: Route, known: Known): fc.Arbitrary<Labelled<Record<string, string>>> => {
  const valid = Option.match(route.pathSchema, { onNone: () => fc.constant<unknown>({}), onSome: encoded })
  const knownValue = (name: string): string =>
    name === "peer" ? known.peer : name === "name" ? known.queue : "1"
  const one = (name: string) =>
    fc.oneof(
      {
        weight: 3,
        arbitrary: labelled(
          "valid",
          valid.map((record) => percent(String(Reflect.get(Object(record), name))))
        )
      },
      { weight: 3, arbitrary: labelled("known", fc.constant(percent(knownValue(name)))) },
      { weight: 2, arbitrary: labelled("nasty", fc.constantFrom(...nastyStrings).map(percent)) },
      { weight: 1, arbitrary: labelled("raw", fc.constantFrom(...rawParams)) }
    )
  return fc.tuple(...route.params.map(one)).map((values) => ({
    label: values.map((value) => value.label).join(",") || "none",
    value: Object.fromEntries(route.params.map((name, index) => [name, values[index]?.value ?? ""]))
  }))
}

/** A record of encoded URL parameters as a query string (`""` when it has none). */
const queryString = (record: unknown): string => {
  const params = new URLSearchParams()
  if (Predicate.isRecord(record)) {
    for (const [key, value] of Object.entries(record))
      if (value !== undefined) params.append(key, String(value))
  }
  const query = params.toString()
  return query === "" ? "" : `?${query}`
}

/** A query string: none, valid for the route's schema, valid with junk, repeated keys, hostile values, or raw. */
const queryOf = (route: Route): fc.Arbitrary<Labelled<string>> => {
  const valid = Option.match(route.urlParamsSchema, {
    onNone: () => fc.constant<unknown>({}),
    onSome: encoded
  })
  const keys = Option.match(route.urlParamsSchema, {
    onNone: (): ReadonlyArray<string> => ["limit"],
    onSome: (schema) => SchemaAST.getPropertySignatures(schema.ast).map((signature) => String(signature.name))
  })
  return fc.oneof(
    { weight: 3, arbitrary: labelled("none", fc.constant("")) },
    { weight: 4, arbitrary: labelled("valid", valid.map(queryString)) },
    {
      weight: 2,
      arbitrary: labelled(
        "junk",
        fc.tuple(valid, fc.string(), fc.string()).map(([record, key, value]) => {
          const query = queryString(record)
          return `${query === "" ? "?" : `${query}&`}${percent(key)}=${percent(value)}`
        })
      )
    },
    {
      weight: 2,
      arbitrary: labelled(
        "repeated",
        fc.constantFrom(...keys).map((key) => `?${key}=1&${key}=2`)
      )
    },
    {
      weight: 2,
      arbitrary: labelled(
        "nasty",
        fc
          .tuple(fc.constantFrom(...keys), fc.constantFrom(...nastyStrings))
          .map(([key, value]) => `?${key}=${percent(value)}`)
      )
    },
    {
      weight: 1,
      arbitrary: labelled(
        "raw",
        fc.constantFrom(
          "?",
          "?&&&",
          "?=",
          "?%",
          "?a=%FF",
          "?a[b]=1",
          "?__proto__[x]=1",
          `?${"a=1&".repeat(2_000)}`
        )
      )
    }
  )
}

type Header = RawHttp.Header

/** Headers that servers and parsers get wrong. Values are latin1 strings: each character one byte. */
const hostileHeaders: ReadonlyArray<ReadonlyArray<Header>> = [
  [["X-Huge", "a".repeat(20_000)]],
  [["Cookie", `a=${"b".repeat(8_000)}`]],
  Array.from({ length: 150 }, (_, index): Header => [`X-Many-${index}`, "1"]),
  [["Content-Length", "abc"]],
  [["Content-Length", "-1"]],
  [["Content-Length", "99999999999999999999"]],
  [["Transfer-Encoding", "gzip"]],
  [["Transfer-Encoding", "chunked"]],
  [["Content-Encoding", "gzip"]],
  [["Expect", "100-continue"]],
  [["Expect", "bogus"]],
  [["Authorization", "Bearer x"]],
  [["Authorization", "\u00ff\u00fe"]],
  [["Accept", "application/xml"]],
  [["Accept-Encoding", "gzip, br, deflate"]],
  [
    ["Connection", "Upgrade"],
    ["Upgrade", "websocket"]
  ],
  [["Upgrade", "h2c"]],
  [["Host", "evil.example"]],
  [["X-Control", "a\u0001b\u007f"]],
  [["Bad Name", "x"]],
  [["X-Latin1", "caf\u00e9 \u00f0\u009f\u0092\u00a5"]],
  [["X-Forwarded-For", "1.2.3.4, ::1"]],
  [["Range", "bytes=0-1"]],
  [["If-None-Match", "*"]]
]

const headersOf: fc.Arbitrary<Labelled<ReadonlyArray<Header>>> = fc.oneof(
  { weight: 6, arbitrary: labelled("none", fc.constant<ReadonlyArray<Header>>([])) },
  {
    weight: 2,
    arbitrary: labelled(
      "random",
      fc.array(
        fc.tuple(
          fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/),
          fc.string({ unit: "grapheme-ascii", maxLength: 40 })
        ),
        {
          maxLength: 4
        }
      )
    )
  },
  { weight: 3, arbitrary: labelled("hostile", fc.constantFrom(...hostileHeaders)) }
)

const contentTypes: ReadonlyArray<string> = [
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=keel",
  "application/json; charset=utf-16",
  "application/xml",
  "",
  "application/jsonx",
  "*/*",
  "application/json, text/plain"
]

const contentTypeOf: fc.Arbitrary<Labelled<string | undefined>> = fc.oneof(
  { weight: 8, arbitrary: labelled("json", fc.constant<string | undefined>("application/json")) },
  { weight: 1, arbitrary: labelled("absent", fc.constant<string | undefined>(undefined)) },
  { weight: 2, arbitrary: labelled("other", fc.constantFrom<string | undefined>(...contentTypes)) }
)

/** The method: the route's own mostly, sometimes another (known to llhttp or not), or lower case. */
const methodOf = (route: Route): fc.Arbitrary<Labelled<string>> =>
  fc.oneof(
    { weight: 12, arbitrary: labelled("own", fc.constant(route.method)) },
    {
      weight: 2,
      arbitrary: labelled(
        "other",
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND")
      )
    },
    {
      weight: 1,
      arbitrary: labelled("invalid", fc.constantFrom(route.method.toLowerCase(), "BREW", "G E T", "CONNECT"))
    }
  )

/** The request target and version: origin-form mostly, else absolute-form, odd paths, other versions. */
const lineOf: fc.Arbitrary<Labelled<(target: string) => string>> = fc.oneof(
  {
    weight: 12,
    arbitrary: labelled(
      "plain",
      fc.constant((target: string) => `${target} HTTP/1.1`)
    )
  },
  {
    weight: 1,
    arbitrary: labelled(
      "odd",
      fc.constantFrom(
        (target: string) => `http://127.0.0.1${target} HTTP/1.1`,
        (target: string) => `/${target} HTTP/1.1`,
        (target: string) => `${target}#fragment HTTP/1.1`,
        (target: string) => `${target}/. HTTP/1.1`,
        (target: string) => `${target} HTTP/1.0`,
        (target: string) => `${target} HTTP/2.0`,
        (target: string) => `${target}\u00ff HTTP/1.1`,
        () => "* HTTP/1.1"
      )
    )
  }
)

/** How the body is framed: `Content-Length` mostly, else chunked (in random pieces). */
const framingOf: fc.Arbitrary<Labelled<ReadonlyArray<number> | undefined>> = fc.oneof(
  { weight: 5, arbitrary: labelled("length", fc.constant<ReadonlyArray<number> | undefined>(undefined)) },
  {
    weight: 1,
    arbitrary: labelled(
      "chunked",
      fc.array(fc.integer({ min: 1, max: 4_096 }), { minLength: 1, maxLength: 8 })
    )
  }
)

const chunked = (body: Buffer, sizes: ReadonlyArray<number>): Buffer => {
  const parts: Array<Buffer> = []
  let at = 0
  for (let index = 0; at < body.length; index++) {
    const size = sizes[index % sizes.length] ?? body.length
    const piece = body.subarray(at, at + size)
    parts.push(
      Buffer.from(`${piece.length.toString(16)}\r\n`, "latin1"),
      piece,
      Buffer.from("\r\n", "latin1")
    )
    at += size
  }
  parts.push(Buffer.from("0\r\n\r\n", "latin1"))
  return Buffer.concat(parts)
}

const noHeaders: ReadonlyArray<Header> = []

/** Hostile (and valid) requests for `route`. */
export const cases = (route: Route, known: Known): fc.Arbitrary<Case> => {
  const body = Option.isSome(route.payloadSchema)
    ? bodies(route.payloadSchema)
    : fc.oneof(
        { weight: 5, arbitrary: labelled("absent", fc.constant<Buffer | undefined>(undefined)) },
        { weight: 1, arbitrary: bodies(Option.none()) }
      )
  return fc
    .record({
      method: methodOf(route),
      line: lineOf,
      params: paramsOf(route, known),
      query: queryOf(route),
      headers: headersOf,
      contentType: contentTypeOf,
      body,
      framing: framingOf
    })
    .map(({ method, line, params, query, headers, contentType, body, framing }): Case => {
      const target = `${fill(route.path, params.value)}${query.value}`
      const framed =
        body.value === undefined
          ? { headers: noHeaders, bytes: undefined }
          : framing.value === undefined
            ? { headers: [["Content-Length", String(body.value.length)] as const], bytes: body.value }
            : {
                headers: [["Transfer-Encoding", "chunked"] as const],
                bytes: chunked(body.value, framing.value)
              }
      const all: ReadonlyArray<Header> = [
        ["Host", "127.0.0.1"],
        ["Connection", "close"],
        ...(body.value === undefined || contentType.value === undefined
          ? []
          : [["Content-Type", contentType.value] as const]),
        ...framed.headers,
        ...headers.value
      ]
      const head = `${method.value} ${line.value(target)}`
      return {
        route: route.id,
        kind: `method:${method.label} line:${line.label} params:${params.label} query:${query.label} header:${headers.label} type:${contentType.label} body:${body.label} framing:${framing.label}`,
        bytes: RawHttp.request(head, all, framed.bytes),
        head: method.value === "HEAD",
        // Long polls may wait as long as the request says.
        timeoutMs: longPolls.has(route.id) ? answerWithinMs + maxReadWaitMs : answerWithinMs
      }
    })
}

/** What is wrong with how the server answered `request`: nothing, for a well-behaved answer. */
export const problems = (request: Case, outcome: RawHttp.Outcome): ReadonlyArray<string> => {
  switch (outcome._tag) {
    case "TimedOut":
      return [`no answer within ${request.timeoutMs} ms`]
    case "Closed":
      return [`the connection was closed without an answer (${outcome.received.length} bytes received)`]
    case "Reply": {
      const { status, headers, body } = outcome.reply
      const text = body.toString("utf8").slice(0, 300)
      if (status >= 500) return [`answered ${status}: ${text}`]
      if (status < 400 || request.head) return []
      if (!(headers["content-type"] ?? "").includes("application/json")) {
        return [`a ${status} that is not JSON (content-type ${headers["content-type"] ?? "none"}): ${text}`]
      }
      let json: unknown
      try {
        json = JSON.parse(body.toString("utf8"))
      } catch {
        return [`a ${status} whose body does not parse: ${text}`]
      }
      return Predicate.isRecord(json) && typeof json._tag === "string" && typeof json.message === "string"
        ? []
        : [`a ${status} without string _tag and message: ${text}`]
    }
  }
}

/** The request's bytes for a failure message (long runs elided). */
export const show = (request: Case): string => {
  const text = request.bytes.toString("latin1")
  return JSON.stringify(
    text.length > 600 ? `${text.slice(0, 400)}…(${text.length} bytes)…${text.slice(-150)}` : text
  )
}
