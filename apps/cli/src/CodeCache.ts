/**
 * Loads a CommonJS bundle with V8's code cache: Node 20 has no compile cache for modules
 * (`module.enableCompileCache` is Node 22), and compiling the fast path's bundle took about as
 * long as running it. The cache is kept next to the bundle, per Node version and architecture,
 * written (at exit, so it holds the functions the run compiled) when missing or rejected by V8,
 * e.g. after a rebuild or under other V8 flags. A cache that cannot be written is only slower.
 */
import { accessSync, constants, readFileSync, renameSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname } from "node:path"
import { Script } from "node:vm"

/** Where `bundle`'s code cache lives for this Node. */
export const cacheFile = (bundle: string): string => `${bundle}.${process.version}-${process.arch}.cache`

const readCache = (file: string): Buffer | undefined => {
  try {
    return readFileSync(file)
  } catch {
    return undefined
  }
}

/** Whether a cache can be written beside the bundle (producing one costs time at every exit). */
const writable = (directory: string): boolean => {
  try {
    accessSync(directory, constants.W_OK)
    return true
  } catch {
    return false
  }
}

const writeCache = (file: string, data: Buffer): void => {
  const temporary = `${file}.${process.pid}.tmp`
  try {
    writeFileSync(temporary, data)
    renameSync(temporary, file)
  } catch {
    // A read-only installation: every run compiles the bundle.
  }
}

/**
 * Runs the CommonJS bundle `bundle` (an absolute path) as a module of its own, its `require`
 * resolving from its directory. Throws when the file cannot be read.
 */
export const run = (bundle: string): void => {
  const source = readFileSync(bundle, "utf8")
  const cache = cacheFile(bundle)
  const cachedData = readCache(cache)
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData === undefined ? {} : { cachedData })
  })
  if ((cachedData === undefined || script.cachedDataRejected === true) && writable(dirname(bundle))) {
    process.once("exit", () => writeCache(cache, script.createCachedData()))
  }
  const module = { exports: {} }
  const main: unknown = script.runInThisContext()
  if (typeof main !== "function") throw new Error(`${bundle} is not a CommonJS bundle`)
  main.call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle))
}
