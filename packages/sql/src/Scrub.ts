/**
 * Secrets out of free text (`scrub`), with no dependency at all: the `keel` binary's entry point
 * uses it before it loads Effect (an unknown option is answered there, redacted as every error
 * line is). `Dsn` re-exports it.
 */

const SECRET = "***"

/** The longest run of non-space characters `scrub` keeps (see there). */
export const maxTokenLength = 512

const longToken = new RegExp(`\\S{${maxTokenLength + 1},}`, "g")

/**
 * Removes secrets from free text such as a driver's error message or a malformed DSN:
 * credentials before an `@` (`user:secret@host`, with or without a scheme), `key=value` pairs
 * whose key names a secret (`password=`, `PGPASSWORD=`, `access_token:`…), and each of the given
 * literal secrets. It errs towards removing too much.
 */
export const scrub = (text: string, secrets: ReadonlyArray<string> = []): string => {
  // A run of more than `maxTokenLength` non-space characters is no DSN or message anyone reads:
  // it is replaced whole (a secret inside it goes with it), which also bounds the patterns below.
  let out = text.replace(longToken, (token) => `[${token.length} characters]`)
  // scheme://user:secret@host — keep the scheme and user, drop everything up to the `@`.
  // Each pattern starts only where its first character cannot extend a match to the left, so a
  // long run of word characters is scanned once, not once per position.
  out = out.replace(/(?<![\w+.-])([a-zA-Z][\w+.-]*:\/\/[^\s:/@]*):[^\s@]*@/g, `$1:${SECRET}@`)
  // user:secret@host without `//` (Go-style DSNs, `mysql:user:pw@…`); skips what the first pass kept.
  out = out.replace(/(?<![^\s:/@])([^\s:/@]+):(?!\/\/)(?!\*\*\*@)[^\s@]*@/g, `$1:${SECRET}@`)
  out = out.replace(
    /(?<![\w.-])([\w.-]*(?:password|passwd|pass|pwd|secret|token|api_?key|apikey))(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,]+)/gi,
    `$1$2${SECRET}`
  )
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join(SECRET)
  }
  return out
}
