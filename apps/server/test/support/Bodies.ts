/**
 * Request bodies for fuzzing, from a payload Schema: valid ones (Effect's `Arbitrary`, encoded as
 * a client would send them) and mutations of them — wrong types, missing and extra fields
 * (`__proto__` too), huge number literals, NaN-ish strings, deep nesting, invalid UTF-8, invalid
 * JSON, binary, top-level non-objects, empty and absent bodies. Each is labelled with its kind.
 */
import { Arbitrary, FastCheck as fc, Option, Predicate, Schema } from "effect"

/** A generated value with the kind of mutation that produced it. */
export type Labelled<A> = { readonly label: string; readonly value: A }

/** `arbitrary` with each value labelled `label`. */
export const labelled = <A>(label: string, arbitrary: fc.Arbitrary<A>): fc.Arbitrary<Labelled<A>> =>
  arbitrary.map((value) => ({ label, value }))

/** Values of `schema`, encoded (what a client would send). */
export const encoded = (schema: Schema.Schema.AnyNoContext): fc.Arbitrary<unknown> => {
  const encode = Schema.encodeUnknownOption(schema)
  const values: fc.Arbitrary<unknown> = Arbitrary.make(schema)
  return values.map((value): unknown => Option.getOrElse(encode(value), () => ({})))
}

// ---------------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------------

/** Strings that parse as something else, or break naive code. */
export const nastyStrings: ReadonlyArray<string> = [
  "",
  " ",
  "NaN",
  "Infinity",
  "-Infinity",
  "1e400",
  "-1e400",
  "0x1F",
  "1_000",
  "٣",
  "9007199254740993",
  "-0",
  "null",
  "undefined",
  "true",
  "[]",
  "{}",
  "%",
  "\u0000",
  "\uD800",
  "💥",
  "../../etc/passwd",
  "' OR 1=1 --",
  "\r\nX-Injected: 1",
  "__proto__",
  "constructor",
  "x".repeat(70_000)
]

/** Numbers at the edges of what JSON and SQLite/PostgreSQL integers hold. */
const nastyNumbers: ReadonlyArray<number> = [
  0,
  -1,
  0.5,
  -0,
  5e-324,
  1e308,
  -1e308,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53 + 2,
  2 ** 63,
  -(2 ** 63)
]

/** Number literals JSON.parse accepts but no integer field should: they become Infinity, 0 or lose precision. */
const nastyNumberTexts: ReadonlyArray<string> = [
  "1e400",
  "-1e400",
  "1e-400",
  "123456789012345678901234567890",
  "-0.0",
  "1E+2"
]

/** Any JSON value, hostile ones often. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...nastyStrings),
  fc.constantFrom(...nastyNumbers),
  fc.constantFrom<unknown>(null, true, false, [], {}, [null], { _tag: "x" }),
  fc.jsonValue({ maxDepth: 3 })
)

// ---------------------------------------------------------------------------------------------
// Mutations of a JSON value
// ---------------------------------------------------------------------------------------------

type Path = ReadonlyArray<string | number>

/** Every position in `value` (not the root), to a small depth. */
const positions = (value: unknown, depth = 0): ReadonlyArray<Path> => {
  if (depth > 4) return []
  const entries: ReadonlyArray<readonly [string | number, unknown]> = Array.isArray(value)
    ? value.map((item, index) => [index, item] as const)
    : Predicate.isRecord(value)
      ? Object.entries(value)
      : []
  return entries.flatMap(([key, item]) => [
    [key],
    ...positions(item, depth + 1).map((path) => [key, ...path])
  ])
}

/** Every object or array in `value`, root included. */
const containers = (value: unknown): ReadonlyArray<Path> =>
  [[], ...positions(value)].filter((path) => {
    const at = get(value, path)
    return Array.isArray(at) || Predicate.isRecord(at)
  })

const get = (value: unknown, path: Path): unknown =>
  path.reduce<unknown>(
    (at, key) => (Predicate.isRecord(at) || Array.isArray(at) ? Reflect.get(at, key) : undefined),
    value
  )

/**
 * Sets an own property, `__proto__` included (plain assignment would change the prototype). An
 * array's `length` cannot be redefined (the generator can draw that key): it is left as it is.
 */
const put = (target: unknown, key: string | number, item: unknown): void => {
  if (Array.isArray(target) && key === "length") return
  if (Predicate.isRecord(target) || Array.isArray(target)) {
    Object.defineProperty(target, key, { value: item, enumerable: true, writable: true, configurable: true })
  }
}

const clone = (value: unknown): unknown => (value === undefined ? null : JSON.parse(JSON.stringify(value)))

const pick = <A>(items: ReadonlyArray<A>, index: number): A | undefined =>
  items.length === 0 ? undefined : items[index % items.length]

/** `value` with the item at `path` replaced (or removed when `replacement` is `undefined`). */
const replaced = (value: unknown, path: Path, replacement: unknown): unknown => {
  const copy = clone(value)
  const key = path[path.length - 1]
  if (key === undefined) return replacement
  const parent = get(copy, path.slice(0, -1))
  if (replacement === undefined) {
    if (Array.isArray(parent) && typeof key === "number") parent.splice(key, 1)
    else if (Predicate.isRecord(parent)) Reflect.deleteProperty(parent, key)
  } else {
    put(parent, key, replacement)
  }
  return copy
}

/** Marks where raw JSON text (a number literal JSON.stringify cannot write, deep nesting) goes. */
const rawMark = "\u0000raw\u0000"

const withRaw = (value: unknown, raw: string): string =>
  JSON.stringify(value).replace(JSON.stringify(rawMark), raw)

/** Nesting `depth` levels deep, as JSON text. */
const nested = (depth: number, kind: "array" | "object"): string =>
  kind === "array"
    ? `${"[".repeat(depth)}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`

/** A body for a route whose payload schema is `schema` (or an object when it has none). */
export const bodies = (
  schema: Option.Option<Schema.Schema.AnyNoContext>
): fc.Arbitrary<Labelled<Buffer | undefined>> => {
  const valid = Option.match(schema, { onNone: () => fc.constant<unknown>({}), onSome: encoded })
  const text = (label: string, arbitrary: fc.Arbitrary<string>) =>
    labelled(
      label,
      arbitrary.map((value): Buffer | undefined => Buffer.from(value, "utf8"))
    )
  const at = fc.tuple(valid, fc.nat())
  return fc.oneof(
    {
      weight: 6,
      arbitrary: text(
        "valid",
        valid.map((value) => JSON.stringify(value) ?? "null")
      )
    },
    {
      weight: 3,
      arbitrary: text(
        "wrong-type",
        fc
          .tuple(at, hostileValue)
          .map(([[value, index], replacement]) =>
            JSON.stringify(replaced(value, pick(positions(value), index) ?? [], replacement))
          )
      )
    },
    {
      weight: 2,
      arbitrary: text(
        "missing-field",
        at.map(([value, index]) => {
          const path = pick(positions(value), index)
          return JSON.stringify(path === undefined ? value : replaced(value, path, undefined)) ?? "null"
        })
      )
    },
    {
      weight: 2,
      arbitrary: text(
        "extra-field",
        fc
          .tuple(
            at,
            fc.oneof(
              fc.string(),
              fc.constantFrom("__proto__", "constructor", "prototype", "_tag", "toString")
            ),
            hostileValue
          )
          .map(([[value, index], key, item]) => {
            const copy = clone(value)
            put(get(copy, pick(containers(copy), index) ?? []), key, item)
            return JSON.stringify(copy)
          })
      )
    },
    {
      weight: 2,
      arbitrary: text(
        "huge-number",
        fc
          .tuple(at, fc.constantFrom(...nastyNumberTexts))
          .map(([[value, index], raw]) =>
            withRaw(replaced(value, pick(positions(value), index) ?? [], rawMark), raw)
          )
      )
    },
    {
      weight: 2,
      arbitrary: text(
        "nan-string",
        fc
          .tuple(at, fc.constantFrom("NaN", "Infinity", "-Infinity", "1e400", "0x10", " 1", "", "1,5", "٣"))
          .map(([[value, index], nan]) =>
            JSON.stringify(replaced(value, pick(positions(value), index) ?? [], nan))
          )
      )
    },
    {
      weight: 2,
      arbitrary: text(
        "deep-nesting",
        fc
          .tuple(
            at,
            fc.constantFrom(64, 1_000, 10_000, 100_000),
            fc.constantFrom("array" as const, "object" as const)
          )
          .map(([[value, index], depth, kind]) =>
            withRaw(
              replaced(value, pick([[], ...positions(value)], index) ?? [], rawMark),
              nested(depth, kind)
            )
          )
      )
    },
    {
      weight: 2,
      arbitrary: labelled(
        "invalid-utf8",
        fc
          .tuple(
            valid,
            fc.array(
              fc.tuple(
                fc.nat(),
                fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80])
              ),
              { minLength: 1, maxLength: 4 }
            )
          )
          .map(([value, inserts]): Buffer | undefined => {
            const bytes = [...Buffer.from(JSON.stringify(value) ?? "null", "utf8")]
            for (const [index, insert] of inserts) bytes.splice(index % (bytes.length + 1), 0, ...insert)
            return Buffer.from(bytes)
          })
      )
    },
    {
      weight: 2,
      arbitrary: text(
        "invalid-json",
        fc.oneof(
          at.map(([value, index]) => {
            const json = JSON.stringify(value) ?? "null"
            return json.slice(0, index % Math.max(1, json.length))
          }),
          fc.constantFrom(
            "{",
            "}",
            "{'a':1}",
            '{"a":1,}',
            "NaN",
            "undefined",
            "{a:1}",
            '"unterminated',
            "\uFEFF{}",
            "[1,2"
          ),
          fc.string()
        )
      )
    },
    {
      weight: 1,
      arbitrary: labelled(
        "binary",
        fc.uint8Array({ maxLength: 512 }).map((bytes): Buffer | undefined => Buffer.from(bytes))
      )
    },
    {
      weight: 1,
      arbitrary: text("not-an-object", fc.constantFrom("null", "[]", '"text"', "1", "true", "[{}]"))
    },
    { weight: 1, arbitrary: text("empty", fc.constant("")) },
    { weight: 1, arbitrary: labelled("absent", fc.constant<Buffer | undefined>(undefined)) }
  )
}
