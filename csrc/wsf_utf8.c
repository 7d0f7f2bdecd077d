/* UTF-8 validation: an ASCII fast path 16 bytes at a time, a fast path for
 * complete two- and three-byte sequences, and a small DFA for everything else
 * (four-byte sequences, the constrained second bytes after E0, ED, F0, F4, and
 * sequences cut by a chunk boundary). */
#include "wsf_utf8.h"

#include <string.h>

/* Byte classes. */
enum {
    C_ASCII, /* 00..7F */
    C_CONT0, /* 80..8F */
    C_CONT1, /* 90..9F */
    C_CONT2, /* A0..BF */
    C_LEAD2, /* C2..DF */
    C_E0,
    C_LEAD3, /* E1..EC, EE..EF */
    C_ED,
    C_F0,
    C_LEAD4, /* F1..F3 */
    C_F4,
    C_BAD, /* C0, C1, F5..FF */
    N_CLASSES
};

/* States: WSF_UTF8_ACCEPT, WSF_UTF8_REJECT, then "continuation bytes still
 * needed" with the range allowed for the next byte. */
enum { S_OK, S_BAD, S_NEED1, S_NEED2, S_NEED3, S_E0, S_ED, S_F0, S_F4, N_STATES };

static const uint8_t byte_class[256] = {
#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
    R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), /* 00..3F */
    R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), /* 40..7F */
    R16(C_CONT0),                                           /* 80..8F */
    R16(C_CONT1),                                           /* 90..9F */
    R16(C_CONT2), R16(C_CONT2),                             /* A0..BF */
    C_BAD, C_BAD, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, /* C0..C7 */
    C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2,     /* C8..CF */
    R16(C_LEAD2),                                                              /* D0..DF */
    C_E0, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3,       /* E0..E7 */
    C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_ED, C_LEAD3, C_LEAD3,       /* E8..EF */
    C_F0, C_LEAD4, C_LEAD4, C_LEAD4, C_F4, C_BAD, C_BAD, C_BAD,                /* F0..F7 */
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,                    /* F8..FF */
#undef R16
};

#define B S_BAD
static const uint8_t transition[N_STATES][N_CLASSES] = {
    /*            ASCII  CONT0   CONT1   CONT2   LEAD2   E0    LEAD3   ED    F0    LEAD4   F4    BAD */
    /* S_OK    */ {S_OK, B, B, B, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4, B},
    /* S_BAD   */ {B, B, B, B, B, B, B, B, B, B, B, B},
    /* S_NEED1 */ {B, S_OK, S_OK, S_OK, B, B, B, B, B, B, B, B},
    /* S_NEED2 */ {B, S_NEED1, S_NEED1, S_NEED1, B, B, B, B, B, B, B, B},
    /* S_NEED3 */ {B, S_NEED2, S_NEED2, S_NEED2, B, B, B, B, B, B, B, B},
    /* S_E0    */ {B, B, B, S_NEED1, B, B, B, B, B, B, B, B},
    /* S_ED    */ {B, S_NEED1, S_NEED1, B, B, B, B, B, B, B, B, B},
    /* S_F0    */ {B, B, S_NEED2, S_NEED2, B, B, B, B, B, B, B, B},
    /* S_F4    */ {B, S_NEED2, B, B, B, B, B, B, B, B, B, B},
};
#undef B

static inline int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t wsf_utf8_validate(uint8_t *state, uint8_t *pending, const unsigned char *s, size_t n) {
    uint8_t st = *state, pend = *pending;
    size_t i = 0;

    if (st == S_BAD) return 0;
    while (i < n) {
        if (st == S_OK) {
            /* ASCII runs, 16 bytes at a time. */
            while (i + 16 <= n) {
                uint64_t a, b;
                memcpy(&a, s + i, 8);
                memcpy(&b, s + i + 8, 8);
                if ((a | b) & 0x8080808080808080ULL) break;
                i += 16;
            }
            if (i == n) break;
            unsigned char c = s[i];
            if (c < 0x80) {
                i++;
                continue;
            }
            /* Whole sequences that need no range check beyond "is a continuation". */
            uint8_t cls = byte_class[c];
            if (cls == C_LEAD3 && i + 2 < n && is_cont(s[i + 1]) && is_cont(s[i + 2])) {
                i += 3;
                continue;
            }
            if (cls == C_LEAD2 && i + 1 < n && is_cont(s[i + 1])) {
                i += 2;
                continue;
            }
        }
        st = transition[st][byte_class[s[i]]];
        if (st == S_BAD) {
            *state = S_BAD;
            *pending = pend;
            return i;
        }
        pend = st == S_OK ? 0 : (uint8_t)(pend + 1);
        i++;
    }
    *state = st;
    *pending = pend;
    return n;
}
