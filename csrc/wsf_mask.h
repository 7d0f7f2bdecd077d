/* XOR masking of WebSocket payloads (RFC 6455 section 5.3). */
#ifndef WSF_MASK_H
#define WSF_MASK_H

#include <stddef.h>
#include <stdint.h>

/* Pick the widest SIMD path this CPU supports. Call once, at module import. */
void wsf_mask_init(void);

/* Name of the path wsf_mask uses ("avx2", "sse2", "neon" or "scalar"). */
const char *wsf_mask_impl(void);

/* dst[i] = src[i] ^ key[(phase + i) % 4] for i < n.
 * key holds the four mask bytes in wire order; dst may equal src (in place),
 * other overlaps are not allowed. Reads and writes stay within [0, n). */
void wsf_mask(unsigned char *dst, const unsigned char *src, size_t n,
              const unsigned char key[4], size_t phase);

#endif
