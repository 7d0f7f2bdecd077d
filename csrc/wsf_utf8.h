/* Incremental UTF-8 validation (RFC 3629): overlongs, surrogates and code
 * points above U+10FFFF are invalid. */
#ifndef WSF_UTF8_H
#define WSF_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define WSF_UTF8_ACCEPT 0
#define WSF_UTF8_REJECT 1

/* Validate s[0..n) continuing from *state (WSF_UTF8_ACCEPT at the start of a
 * text). Returns n when every byte so far can still be part of valid UTF-8,
 * otherwise the index of the byte that made it invalid; *state is then
 * WSF_UTF8_REJECT. *pending counts the bytes of an unfinished sequence (0-3),
 * so a caller can tell where that sequence began. */
size_t wsf_utf8_validate(uint8_t *state, uint8_t *pending, const unsigned char *s, size_t n);

#endif
