/*
 * dockerfile_text.c - UTF-8 and character classes with Go's semantics.
 *
 * buildkit decodes, classifies and quotes text with Go's standard library;
 * to print exactly the same parse trees, these helpers do the same: invalid
 * UTF-8 decodes as U+FFFD one byte at a time, white space is Unicode white
 * space, and quoting follows strconv.Quote. Go's full Unicode tables (letters,
 * printable characters, case mapping) are approximated beyond the ranges a
 * Dockerfile realistically contains; the approximations are listed below.
 */
#include <stdio.h>

#include "common/buf.h"
#include "steps/dockerfile_int.h"
#include "common/banned.h"

int32_t step_df_rune_decode(const char *s, size_t len, size_t *width)
{
        const unsigned char *p = (const unsigned char *)s;
        unsigned char c = p[0];
        int32_t r;
        size_t n, i;

        *width = 1;
        if (c < 0x80)
                return c;
        if (c >= 0xC2 && c <= 0xDF) {
                n = 2;
                r = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                r = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                r = c & 0x07;
        } else {
                return STEP_DF_RUNE_ERROR;
        }
        if (len < n)
                return STEP_DF_RUNE_ERROR;
        for (i = 1; i < n; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return STEP_DF_RUNE_ERROR;
                r = (r << 6) | (p[i] & 0x3F);
        }
        if ((n == 3 && r < 0x800) || (n == 4 && (r < 0x10000 || r > 0x10FFFF)) ||
            (r >= 0xD800 && r <= 0xDFFF))
                return STEP_DF_RUNE_ERROR;
        *width = n;
        return r;
}

int step_df_rune_put(struct sw_buf *b, int32_t r, struct sw_err *err)
{
        char e[4];
        size_t n;

        if (r < 0 || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
                r = STEP_DF_RUNE_ERROR;
        if (r < 0x80) {
                e[0] = (char)r;
                n = 1;
        } else if (r < 0x800) {
                e[0] = (char)(0xC0 | (r >> 6));
                e[1] = (char)(0x80 | (r & 0x3F));
                n = 2;
        } else if (r < 0x10000) {
                e[0] = (char)(0xE0 | (r >> 12));
                e[1] = (char)(0x80 | ((r >> 6) & 0x3F));
                e[2] = (char)(0x80 | (r & 0x3F));
                n = 3;
        } else {
                e[0] = (char)(0xF0 | (r >> 18));
                e[1] = (char)(0x80 | ((r >> 12) & 0x3F));
                e[2] = (char)(0x80 | ((r >> 6) & 0x3F));
                e[3] = (char)(0x80 | (r & 0x3F));
                n = 4;
        }
        return sw_buf_append(b, e, n, err);
}

bool step_df_is_space(int32_t r)
{
        switch (r) {
        case '\t':
        case '\n':
        case '\v':
        case '\f':
        case '\r':
        case ' ':
        case 0x85:
        case 0xA0:
        case 0x1680:
        case 0x2028:
        case 0x2029:
        case 0x202F:
        case 0x205F:
        case 0x3000:
                return true;
        default:
                return r >= 0x2000 && r <= 0x200A;
        }
}

/* The first code point of each run of ten Unicode decimal digits (category Nd). */
static const int32_t digit_runs[] = {
        0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,  0x0B66,  0x0BE6,
        0x0C66,  0x0CE6,  0x0D66,  0x0DE6,  0x0E50,  0x0ED0,  0x0F20,  0x1040,  0x1090,
        0x17E0,  0x1810,  0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,
        0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,
        0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
        0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50,
        0x16A60, 0x16AC0, 0x16B50, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0,
};

bool step_df_is_digit(int32_t r)
{
        if (r < 0x80)
                return r >= '0' && r <= '9';
        if (r >= 0x1D7CE && r <= 0x1D7FF) /* mathematical digits: five runs */
                return true;
        for (size_t i = 0; i < sizeof(digit_runs) / sizeof(digit_runs[0]); i++)
                if (r >= digit_runs[i] && r < digit_runs[i] + 10)
                        return true;
        return false;
}

/*
 * Letters: ASCII exactly; beyond ASCII every rune that is not white space,
 * not a digit, not a Latin-1 symbol or punctuation, not a combining mark, not
 * in the general punctuation and symbol blocks and not in CJK punctuation
 * counts as a letter (Hangul, kana, ideographs, Latin, Greek, Cyrillic ...
 * all are; Go also excludes other marks and symbols, which this does not).
 */
bool step_df_is_letter(int32_t r)
{
        if (r < 0x80)
                return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
        if (r < 0xC0)
                return r == 0xAA || r == 0xB5 || r == 0xBA;
        if (r == 0xD7 || r == 0xF7 || r == STEP_DF_RUNE_ERROR)
                return false;
        if (step_df_is_space(r))
                return false;
        if (r >= 0x2000 && r <= 0x2BFF) /* punctuation, symbols, arrows, boxes */
                return false;
        if ((r >= 0x300 && r <= 0x36F) || (r >= 0x1AB0 && r <= 0x1AFF) ||
            (r >= 0x1DC0 && r <= 0x1DFF) || (r >= 0xFE20 && r <= 0xFE2F)) /* combining marks */
                return false;
        if (step_df_is_digit(r))
                return false;
        if (r >= 0x3000 && r <= 0x303F) /* CJK punctuation */
                return false;
        if (r >= 0xFE00 && r <= 0xFE0F) /* variation selectors */
                return false;
        if (r >= 0xFF00 && r <= 0xFF20)
                return false;
        return true;
}

/*
 * Go's unicode.IsPrint beyond ASCII: false for C1 controls, non-ASCII spaces,
 * format characters, private use and noncharacters; true otherwise (Go also
 * says false for unassigned code points, which this does not know).
 */
static bool is_print(int32_t r)
{
        if (r < 0x80)
                return r >= 0x20 && r < 0x7F;
        if (r <= 0xA0 || r == 0xAD)
                return false;
        if (step_df_is_space(r))
                return false;
        if ((r >= 0x600 && r <= 0x605) || r == 0x61C || r == 0x6DD || r == 0x70F || r == 0x8E2 ||
            r == 0x180E)
                return false;
        if ((r >= 0x200B && r <= 0x200F) || (r >= 0x202A && r <= 0x202E) ||
            (r >= 0x2060 && r <= 0x206F))
                return false;
        if ((r >= 0xE000 && r <= 0xF8FF) || r == 0xFEFF || (r >= 0xFFF0 && r <= 0xFFFB) ||
            r == 0xFFFE || r == 0xFFFF)
                return false;
        if ((r & 0xFFFE) == 0xFFFE || (r >= 0xFDD0 && r <= 0xFDEF))
                return false;
        if (r == 0x110BD || r == 0x110CD || (r >= 0x13430 && r <= 0x1343F) ||
            (r >= 0x1BCA0 && r <= 0x1BCA3) || (r >= 0x1D173 && r <= 0x1D17A))
                return false;
        if (r == 0x590 || (r >= 0x323B0 && r < 0xE0000)) /* unassigned, planes 4-13 too */
                return false;
        if (r >= 0xE0000 && r <= 0xE0FFF)
                return r >= 0xE0100 && r <= 0xE01EF;
        if (r >= 0xF0000)
                return false;
        return true;
}

int step_df_quote(struct sw_buf *b, const char *s, size_t len, struct sw_err *err)
{
        static const char hex[] = "0123456789abcdef";
        char esc[16];
        size_t i = 0, w;
        int32_t r;
        int rc = sw_buf_putc(b, '"', err);

        while (!rc && i < len) {
                r = step_df_rune_decode(s + i, len - i, &w);
                if (r == STEP_DF_RUNE_ERROR && w == 1) {
                        esc[0] = '\\';
                        esc[1] = 'x';
                        esc[2] = hex[(unsigned char)s[i] >> 4];
                        esc[3] = hex[(unsigned char)s[i] & 15];
                        rc = sw_buf_append(b, esc, 4, err);
                } else if (r == '"' || r == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char)r;
                        rc = sw_buf_append(b, esc, 2, err);
                } else if (is_print(r)) {
                        rc = sw_buf_append(b, s + i, w, err);
                } else {
                        switch (r) {
                        case '\a':
                                rc = sw_buf_puts(b, "\\a", err);
                                break;
                        case '\b':
                                rc = sw_buf_puts(b, "\\b", err);
                                break;
                        case '\f':
                                rc = sw_buf_puts(b, "\\f", err);
                                break;
                        case '\n':
                                rc = sw_buf_puts(b, "\\n", err);
                                break;
                        case '\r':
                                rc = sw_buf_puts(b, "\\r", err);
                                break;
                        case '\t':
                                rc = sw_buf_puts(b, "\\t", err);
                                break;
                        case '\v':
                                rc = sw_buf_puts(b, "\\v", err);
                                break;
                        default:
                                if (r < 0x20 || r == 0x7F)
                                        rc = sw_buf_printf(b, err, "\\x%02x", (unsigned)r);
                                else if (r < 0x10000)
                                        rc = sw_buf_printf(b, err, "\\u%04x", (unsigned)r);
                                else
                                        rc = sw_buf_printf(b, err, "\\U%08x", (unsigned)r);
                        }
                }
                i += w;
        }
        return rc ? rc : sw_buf_putc(b, '"', err);
}

static int32_t to_lower(int32_t r)
{
        if (r >= 'A' && r <= 'Z')
                return r + 32;
        if (r < 0xC0)
                return r;
        if (r <= 0xDE && r != 0xD7)
                return r + 32;
        if (r >= 0x391 && r <= 0x3AB && r != 0x3A2)
                return r + 32;
        if (r >= 0x410 && r <= 0x42F)
                return r + 32;
        if (r >= 0x400 && r <= 0x40F)
                return r + 80;
        return r;
}

int step_df_lower(struct sw_buf *b, const char *s, size_t len, struct sw_err *err)
{
        size_t i = 0, w;
        int32_t r;
        int rc = 0;

        while (!rc && i < len) {
                if ((unsigned char)s[i] < 0x80) {
                        char c = s[i];
                        rc = sw_buf_putc(b, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c), err);
                        i++;
                        continue;
                }
                r = step_df_rune_decode(s + i, len - i, &w);
                /* Go's ToLower rewrites invalid bytes as U+FFFD, like WriteRune. */
                rc = step_df_rune_put(b, to_lower(r), err);
                i += w;
        }
        return rc;
}

void step_df_trim_space(const char *s, size_t *start, size_t *end)
{
        size_t w;

        while (*start < *end) {
                int32_t r = step_df_rune_decode(s + *start, *end - *start, &w);
                if (!step_df_is_space(r))
                        break;
                *start += w;
        }
        while (*end > *start) {
                /* Find the start of the last rune: at most 4 bytes back. */
                size_t k = *end - 1, back = 0;
                while (k > *start && back < 3 && ((unsigned char)s[k] & 0xC0) == 0x80) {
                        k--;
                        back++;
                }
                int32_t r = step_df_rune_decode(s + k, *end - k, &w);
                if (k + w != *end) {
                        /* Not a whole rune: an invalid byte, which is no space. */
                        break;
                }
                if (!step_df_is_space(r))
                        break;
                *end = k;
        }
}
