/* XOR masking, a word or a vector at a time.
 *
 * The key is rotated to the phase. Payloads under 256 bytes go 8 bytes at a
 * time through unaligned words; longer ones first bring the destination to a
 * 32-byte boundary so the vector loop stores aligned (loads stay unaligned). The widest path is chosen once at import (AVX2 where the
 * CPU has it, else the architecture baseline: SSE2 on x86-64, NEON on arm64,
 * 64-bit words elsewhere), so a wheel runs on any CPU of its architecture.
 */
#include "wsf_mask.h"

#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define WSF_X86 1
#include <emmintrin.h>
#if defined(__GNUC__) || defined(__clang__)
#define WSF_AVX2 1
#include <immintrin.h>
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
#define WSF_NEON 1
#include <arm_neon.h>
#endif

typedef void (*wsf_block_fn)(unsigned char *, const unsigned char *, size_t, uint64_t);

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Each block function handles a multiple of 8 bytes starting at an aligned
 * destination, with the 8-byte key pattern `k8` already in phase. */
static void block_scalar(unsigned char *dst, const unsigned char *src, size_t n, uint64_t k8) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        store64(dst + i, load64(src + i) ^ k8);
        store64(dst + i + 8, load64(src + i + 8) ^ k8);
        store64(dst + i + 16, load64(src + i + 16) ^ k8);
        store64(dst + i + 24, load64(src + i + 24) ^ k8);
    }
    for (; i + 8 <= n; i += 8) store64(dst + i, load64(src + i) ^ k8);
}

#if defined(WSF_X86)
static void block_sse2(unsigned char *dst, const unsigned char *src, size_t n, uint64_t k8) {
    const __m128i k = _mm_set1_epi64x((long long)k8);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_store_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
        _mm_store_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k));
        _mm_store_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k));
        _mm_store_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k));
    }
    for (; i + 16 <= n; i += 16)
        _mm_store_si128((__m128i *)(dst + i),
                        _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + i)), k));
    block_scalar(dst + i, src + i, n - i, k8);
}
#endif

#if defined(WSF_AVX2)
__attribute__((target("avx2"))) static void block_avx2(unsigned char *dst, const unsigned char *src,
                                                       size_t n, uint64_t k8) {
    const __m256i k = _mm256_set1_epi64x((long long)k8);
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_store_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_store_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_store_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_store_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32)
        _mm256_store_si256((__m256i *)(dst + i),
                           _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + i)), k));
    block_sse2(dst + i, src + i, n - i, k8);
}
#endif

#if defined(WSF_NEON)
static void block_neon(unsigned char *dst, const unsigned char *src, size_t n, uint64_t k8) {
    const uint8x16_t k = vreinterpretq_u8_u64(vdupq_n_u64(k8));
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint8x16_t a = vld1q_u8(src + i), b = vld1q_u8(src + i + 16);
        uint8x16_t c = vld1q_u8(src + i + 32), d = vld1q_u8(src + i + 48);
        vst1q_u8(dst + i, veorq_u8(a, k));
        vst1q_u8(dst + i + 16, veorq_u8(b, k));
        vst1q_u8(dst + i + 32, veorq_u8(c, k));
        vst1q_u8(dst + i + 48, veorq_u8(d, k));
    }
    for (; i + 16 <= n; i += 16) vst1q_u8(dst + i, veorq_u8(vld1q_u8(src + i), k));
    block_scalar(dst + i, src + i, n - i, k8);
}
#endif

/* Written once by wsf_mask_init (under the import lock), read-only afterwards. */
static wsf_block_fn block_impl = block_scalar;
static const char *block_name = "scalar";

void wsf_mask_init(void) {
#if defined(WSF_NEON)
    block_impl = block_neon;
    block_name = "neon";
#elif defined(WSF_X86)
    block_impl = block_sse2;
    block_name = "sse2";
#if defined(WSF_AVX2)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        block_impl = block_avx2;
        block_name = "avx2";
    }
#endif
#endif
}

const char *wsf_mask_impl(void) { return block_name; }

void wsf_mask(unsigned char *dst, const unsigned char *src, size_t n, const unsigned char key[4],
              size_t phase) {
    unsigned char k[8];
    size_t i = 0, j;
    uint64_t k8;

    if (n < 8) {
        for (; i < n; i++) dst[i] = src[i] ^ key[(phase + i) & 3];
        return;
    }
    if (n >= 256) {
        /* Bring dst to a 32-byte boundary so the vector loop stores aligned. */
        size_t lead = (size_t)(-(uintptr_t)dst & 31u);
        for (; i < lead; i++) dst[i] = src[i] ^ key[(phase + i) & 3];
    }
    for (j = 0; j < 8; j++) k[j] = key[(phase + i + j) & 3];
    memcpy(&k8, k, 8);
    size_t body = (n - i) & ~(size_t)7;
    if (n >= 256)
        block_impl(dst + i, src + i, body, k8);
    else
        block_scalar(dst + i, src + i, body, k8); /* unaligned words: no prologue worth paying */
    i += body;
    for (; i < n; i++) dst[i] = src[i] ^ key[(phase + i) & 3];
}
