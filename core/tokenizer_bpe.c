/* tokenizer_bpe.c — byte-level BPE (GPT-2 family): loading a Hugging Face tokenizer.json (model type
 * BPE, ByteLevel pre-tokenizer) or OpenAI's encoder.json + vocab.bpe, and encoding.
 *
 * Encoding = (1) with ByteLevel add_prefix_space, one space before non-empty text (always, even when the
 * text starts with one — HF skips it then; we keep encode/decode lossless instead); (2) added/special
 * tokens (tokenizer.json added_tokens; <|endoftext|> for encoder.json) matched literally, longest
 * first, leftmost, before anything else; (3) each stretch between them split with the GPT-2 pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * implemented by hand on UTF-8; (4) each piece mapped byte -> one-byte token (GPT-2 bytes_to_unicode)
 * and merged by rank (lowest first, leftmost on ties) with a hash map of pairs.
 * Unicode: \p{L} / \p{N} are the general categories L* / N* from the range tables at the end of this
 * file (all planes, generated from the Python `regex` module 2026.5.9 — a newer Unicode than Python
 * 3.11's unicodedata 14.0; Hugging Face's Oniguruma may differ on characters added recently); \s is
 * the Unicode White_Space property. Bytes that are not valid UTF-8 (including overlong forms,
 * surrogates and code points above U+10FFFF) count one by one as [^\s\p{L}\p{N}] characters, so any
 * byte string encodes, and decoding (concatenating each token's bytes) gives it back.
 * Not supported (loading fails with a message): normalizers, pre-tokenizers other than ByteLevel
 * with the GPT-2 regex, continuing_subword_prefix / end_of_word_suffix. Ignored: BPE dropout,
 * added-token lstrip/rstrip/single_word flags, post-processors (BOS is added only on request).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tokenizer_internal.h"

/* ---- GPT-2 bytes_to_unicode ---- */
typedef struct {
    uint32_t b2u[256]; /* byte -> code point */
    int16_t u2b[324];  /* code point -> byte, -1 if none (all mapped code points are < 324) */
} byte_map;

static void byte_map_init(byte_map *m) {
    for (int i = 0; i < 324; i++) m->u2b[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        m->b2u[b] = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
        m->u2b[m->b2u[b]] = (int16_t)b;
    }
}

/* ---- UTF-8 ---- */
static int utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#define CP_INVALID 0xFFFFFFFFu

/* Decodes one character at s[i] (i < e); returns its length (>= 1). Invalid or truncated sequences
 * yield CP_INVALID with length 1 (the byte stands alone). */
static size_t utf8_next(const uint8_t *s, size_t i, size_t e, uint32_t *cp) {
    uint8_t c = s[i];
    if (c < 0x80) return *cp = c, 1;
    size_t n;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
    } else
        return *cp = CP_INVALID, 1;
    if (i + n > e || s[i + 1] < lo || s[i + 1] > hi) return *cp = CP_INVALID, 1;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return *cp = CP_INVALID, 1;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    *cp = v;
    return n;
}

/* ---- character classes ---- */
/* \p{L} and \p{N} as inclusive code point ranges, ascending (see the file comment for their source) */
static const uint32_t uni_letter[][2] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6},
    {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374},
    {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556}, {0x559, 0x559},
    {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x66E, 0x66F}, {0x671, 0x6D3},
    {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF}, {0x710, 0x710},
    {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5}, {0x7FA, 0x7FA},
    {0x800, 0x815}, {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858}, {0x860, 0x86A},
    {0x870, 0x887}, {0x889, 0x88F}, {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D}, {0x950, 0x950},
    {0x958, 0x961}, {0x971, 0x980}, {0x985, 0x98C}, {0x98F, 0x990}, {0x993, 0x9A8}, {0x9AA, 0x9B0},
    {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD}, {0x9CE, 0x9CE}, {0x9DC, 0x9DD}, {0x9DF, 0x9E1},
    {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28}, {0xA2A, 0xA30},
    {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E}, {0xA72, 0xA74},
    {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3}, {0xAB5, 0xAB9},
    {0xABD, 0xABD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C}, {0xB0F, 0xB10},
    {0xB13, 0xB28}, {0xB2A, 0xB30}, {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D}, {0xB5C, 0xB5D},
    {0xB5F, 0xB61}, {0xB71, 0xB71}, {0xB83, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90}, {0xB92, 0xB95},
    {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4}, {0xBA8, 0xBAA}, {0xBAE, 0xBB9},
    {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28}, {0xC2A, 0xC39}, {0xC3D, 0xC3D},
    {0xC58, 0xC5A}, {0xC5C, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C}, {0xC8E, 0xC90},
    {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDC, 0xCDE}, {0xCE0, 0xCE1},
    {0xCF1, 0xCF2}, {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D}, {0xD4E, 0xD4E},
    {0xD54, 0xD56}, {0xD5F, 0xD61}, {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1}, {0xDB3, 0xDBB},
    {0xDBD, 0xDBD}, {0xDC0, 0xDC6}, {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46}, {0xE81, 0xE82},
    {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3}, {0xEA5, 0xEA5}, {0xEA7, 0xEB0}, {0xEB2, 0xEB3},
    {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF}, {0xF00, 0xF00}, {0xF40, 0xF47},
    {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F}, {0x1050, 0x1055}, {0x105A, 0x105D},
    {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070}, {0x1075, 0x1081}, {0x108E, 0x108E},
    {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x10FA}, {0x10FC, 0x1248},
    {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D}, {0x1260, 0x1288},
    {0x128A, 0x128D}, {0x1290, 0x12B0}, {0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0},
    {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310}, {0x1312, 0x1315}, {0x1318, 0x135A},
    {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1401, 0x166C}, {0x166F, 0x167F},
    {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8}, {0x1700, 0x1711}, {0x171F, 0x1731},
    {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770}, {0x1780, 0x17B3}, {0x17D7, 0x17D7},
    {0x17DC, 0x17DC}, {0x1820, 0x1878}, {0x1880, 0x1884}, {0x1887, 0x18A8}, {0x18AA, 0x18AA},
    {0x18B0, 0x18F5}, {0x1900, 0x191E}, {0x1950, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB},
    {0x19B0, 0x19C9}, {0x1A00, 0x1A16}, {0x1A20, 0x1A54}, {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33},
    {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF}, {0x1BBA, 0x1BE5}, {0x1C00, 0x1C23},
    {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6}, {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF},
    {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57},
    {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2071, 0x2071},
    {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E},
    {0x2183, 0x2184}, {0x2C00, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25},
    {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67}, {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96},
    {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6}, {0x2DB8, 0x2DBE}, {0x2DC0, 0x2DC6},
    {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2E2F, 0x2E2F}, {0x3005, 0x3006},
    {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA},
    {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E}, {0x31A0, 0x31BF}, {0x31F0, 0x31FF},
    {0x3400, 0x4DBF}, {0x4E00, 0xA48C}, {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA610, 0xA61F},
    {0xA62A, 0xA62B}, {0xA640, 0xA66E}, {0xA67F, 0xA69D}, {0xA6A0, 0xA6E5}, {0xA717, 0xA71F},
    {0xA722, 0xA788}, {0xA78B, 0xA7DC}, {0xA7F1, 0xA801}, {0xA803, 0xA805}, {0xA807, 0xA80A},
    {0xA80C, 0xA822}, {0xA840, 0xA873}, {0xA882, 0xA8B3}, {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB},
    {0xA8FD, 0xA8FE}, {0xA90A, 0xA925}, {0xA930, 0xA946}, {0xA960, 0xA97C}, {0xA984, 0xA9B2},
    {0xA9CF, 0xA9CF}, {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF}, {0xA9FA, 0xA9FE}, {0xAA00, 0xAA28},
    {0xAA40, 0xAA42}, {0xAA44, 0xAA4B}, {0xAA60, 0xAA76}, {0xAA7A, 0xAA7A}, {0xAA7E, 0xAAAF},
    {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD}, {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2},
    {0xAADB, 0xAADD}, {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E},
    {0xAB11, 0xAB16}, {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69},
    {0xAB70, 0xABE2}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D},
    {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28},
    {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44},
    {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB},
    {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE},
    {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x10000, 0x1000B},
    {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D},
    {0x10080, 0x100FA}, {0x10280, 0x1029C}, {0x102A0, 0x102D0}, {0x10300, 0x1031F}, {0x1032D, 0x10340},
    {0x10342, 0x10349}, {0x10350, 0x10375}, {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF},
    {0x10400, 0x1049D}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527}, {0x10530, 0x10563},
    {0x10570, 0x1057A}, {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1},
    {0x105A3, 0x105B1}, {0x105B3, 0x105B9}, {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10600, 0x10736},
    {0x10740, 0x10755}, {0x10760, 0x10767}, {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
    {0x10800, 0x10805}, {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
    {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5},
    {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10940, 0x10959}, {0x10980, 0x109B7}, {0x109BE, 0x109BF},
    {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17}, {0x10A19, 0x10A35}, {0x10A60, 0x10A7C},
    {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4}, {0x10B00, 0x10B35}, {0x10B40, 0x10B55},
    {0x10B60, 0x10B72}, {0x10B80, 0x10B91}, {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x10D00, 0x10D23}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1},
    {0x10EC2, 0x10EC7}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27}, {0x10F30, 0x10F45}, {0x10F70, 0x10F81},
    {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11003, 0x11037}, {0x11071, 0x11072}, {0x11075, 0x11075},
    {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126}, {0x11144, 0x11144}, {0x11147, 0x11147},
    {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2}, {0x111C1, 0x111C4}, {0x111DA, 0x111DA},
    {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B}, {0x1123F, 0x11240}, {0x11280, 0x11286},
    {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D}, {0x1129F, 0x112A8}, {0x112B0, 0x112DE},
    {0x11305, 0x1130C}, {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333},
    {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7}, {0x113D1, 0x113D1},
    {0x113D3, 0x113D3}, {0x11400, 0x11434}, {0x11447, 0x1144A}, {0x1145F, 0x11461}, {0x11480, 0x114AF},
    {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB}, {0x11600, 0x1162F},
    {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8}, {0x11700, 0x1171A}, {0x11740, 0x11746},
    {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913},
    {0x11915, 0x11916}, {0x11918, 0x1192F}, {0x1193F, 0x1193F}, {0x11941, 0x11941}, {0x119A0, 0x119A7},
    {0x119AA, 0x119D0}, {0x119E1, 0x119E1}, {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32},
    {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89}, {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8},
    {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E}, {0x11C40, 0x11C40}, {0x11C72, 0x11C8F},
    {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30}, {0x11D46, 0x11D46}, {0x11D60, 0x11D65},
    {0x11D67, 0x11D68}, {0x11D6A, 0x11D89}, {0x11D98, 0x11D98}, {0x11DB0, 0x11DDB}, {0x11EE0, 0x11EF2},
    {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399},
    {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13441, 0x13446}, {0x13460, 0x143FA},
    {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E}, {0x16A70, 0x16ABE},
    {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F},
    {0x16D40, 0x16D6C}, {0x16E40, 0x16E7F}, {0x16EA0, 0x16EB8}, {0x16EBB, 0x16ED3}, {0x16F00, 0x16F4A},
    {0x16F50, 0x16F50}, {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x16FF2, 0x16FF3},
    {0x17000, 0x18CD5}, {0x18CFF, 0x18D1E}, {0x18D80, 0x18DF2}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB},
    {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155},
    {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88},
    {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2},
    {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3},
    {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539},
    {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
    {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734},
    {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E}, {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2},
    {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C},
    {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB}, {0x1E4D0, 0x1E4EB},
    {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0}, {0x1E6C0, 0x1E6DE}, {0x1E6E0, 0x1E6E2}, {0x1E6E4, 0x1E6E5},
    {0x1E6E7, 0x1E6ED}, {0x1E6F0, 0x1E6F4}, {0x1E6FE, 0x1E6FF}, {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB},
    {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4}, {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B},
    {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27},
    {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42},
    {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B}, {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52},
    {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D},
    {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72},
    {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B},
    {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B81D},
    {0x2B820, 0x2CEAD}, {0x2CEB0, 0x2EBE0}, {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A},
    {0x31350, 0x33479},
};
static const uint32_t uni_number[][2] = {
    {0x30, 0x39}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9}, {0x7C0, 0x7C9},
    {0x966, 0x96F}, {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF}, {0xB66, 0xB6F},
    {0xB72, 0xB77}, {0xBE6, 0xBF2}, {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF}, {0xD58, 0xD5E},
    {0xD66, 0xD78}, {0xDE6, 0xDEF}, {0xE50, 0xE59}, {0xED0, 0xED9}, {0xF20, 0xF33}, {0x1040, 0x1049},
    {0x1090, 0x1099}, {0x1369, 0x137C}, {0x16EE, 0x16F0}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9},
    {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA}, {0x1A80, 0x1A89}, {0x1A90, 0x1A99},
    {0x1B50, 0x1B59}, {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59}, {0x2070, 0x2070},
    {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B},
    {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x2CFD, 0x2CFD}, {0x3007, 0x3007}, {0x3021, 0x3029},
    {0x3038, 0x303A}, {0x3192, 0x3195}, {0x3220, 0x3229}, {0x3248, 0x324F}, {0x3251, 0x325F},
    {0x3280, 0x3289}, {0x32B1, 0x32BF}, {0xA620, 0xA629}, {0xA6E6, 0xA6EF}, {0xA830, 0xA835},
    {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9}, {0xA9F0, 0xA9F9}, {0xAA50, 0xAA59},
    {0xABF0, 0xABF9}, {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178}, {0x1018A, 0x1018B},
    {0x102E1, 0x102FB}, {0x10320, 0x10323}, {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x103D1, 0x103D5},
    {0x104A0, 0x104A9}, {0x10858, 0x1085F}, {0x10879, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF},
    {0x10916, 0x1091B}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF}, {0x10A40, 0x10A48},
    {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F},
    {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39}, {0x10D40, 0x10D49}, {0x10E60, 0x10E7E},
    {0x10F1D, 0x10F26}, {0x10F51, 0x10F54}, {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9},
    {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3}, {0x11730, 0x1173B},
    {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9}, {0x11C50, 0x11C6C}, {0x11D50, 0x11D59},
    {0x11DA0, 0x11DA9}, {0x11DE0, 0x11DE9}, {0x11F50, 0x11F59}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E},
    {0x16130, 0x16139}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61},
    {0x16D70, 0x16D79}, {0x16E80, 0x16E96}, {0x16FF4, 0x16FF6}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3},
    {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9},
    {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB},
    {0x1ECAD, 0x1ECAF}, {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C},
    {0x1FBF0, 0x1FBF9},
};
static const size_t n_uni_letter = sizeof uni_letter / sizeof uni_letter[0];
static const size_t n_uni_number = sizeof uni_number / sizeof uni_number[0];

enum { CL_SPACE, CL_LETTER, CL_NUMBER, CL_OTHER };

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int char_class(uint32_t cp) {
    if (cp < 0x80) {
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CL_SPACE;
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CL_LETTER;
        if (cp >= '0' && cp <= '9') return CL_NUMBER;
        return CL_OTHER;
    }
    if (cp == CP_INVALID) return CL_OTHER;
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return CL_SPACE;
    if (in_ranges(uni_letter, n_uni_letter, cp)) return CL_LETTER;
    if (in_ranges(uni_number, n_uni_number, cp)) return CL_NUMBER;
    return CL_OTHER;
}

static int class_at(const uint8_t *s, size_t i, size_t e, size_t *len) {
    uint32_t cp;
    *len = utf8_next(s, i, e, &cp);
    return char_class(cp);
}

/* End of the run of characters of class `cl` starting at i. */
static size_t run_end(const uint8_t *s, size_t i, size_t e, int cl) {
    size_t n;
    while (i < e && class_at(s, i, e, &n) == cl) i += n;
    return i;
}

/* End of the GPT-2 pre-tokenizer piece starting at i < e (e = end of the stretch between special tokens,
 * which the look-ahead (?!\S) sees as the end of the text). Alternatives in the pattern's order. */
static size_t gpt2_piece_end(const uint8_t *s, size_t i, size_t e) {
    size_t n;
    if (s[i] == '\'' && i + 1 < e) { /* 's 't 're 've 'm 'll 'd (case-sensitive) */
        uint8_t a = s[i + 1], b = i + 2 < e ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    int cl = class_at(s, i, e, &n);
    if (s[i] == ' ' && i + 1 < e) { /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' with the space */
        size_t n2;
        int cl2 = class_at(s, i + 1, e, &n2);
        if (cl2 != CL_SPACE) return run_end(s, i + 1 + n2, e, cl2);
    }
    if (cl != CL_SPACE) return run_end(s, i + n, e, cl);
    /* \s+(?!\S) then \s+: a whitespace run keeps its last character for the next piece when a
     * non-space follows it, unless the run is a single character */
    size_t j = i, last = i, k = 0;
    while (j < e && class_at(s, j, e, &n) == CL_SPACE) last = j, j += n, k++;
    if (j == e || k == 1) return j;
    return last;
}

/* ---- encoding ---- */
static int bpe_pair(const sf_tokenizer *t, int32_t a, int32_t b, double *key, int32_t *merged) {
    int32_t rank;
    if (!tk_pairmap_get(&t->merges, a, b, &rank, merged)) return 0;
    *key = (double)rank;
    return 1;
}

/* Encodes text[a, e) (no special tokens inside) appending to out. */
static sf_status encode_stretch(const sf_tokenizer *t, tk_scratch *sc, const uint8_t *s, size_t a, size_t e,
                                int32_t *out, size_t *n) {
    while (a < e) {
        size_t b = gpt2_piece_end(s, a, e);
        int32_t *w = out + *n; // (b - a) symbols, merged in place
        size_t k = b - a;
        for (size_t i = 0; i < k; i++) {
            w[i] = t->byte_id[s[a + i]];
            if (w[i] < 0)
                return sf_fail(SF_ERR_FORMAT, "tokenizer encode: byte 0x%02X has no token in '%s'", s[a + i], t->path);
        }
        sf_status st = tk_merge(t, bpe_pair, sc, w, &k);
        if (st) return st;
        *n += k;
        a = b;
    }
    return SF_OK;
}

sf_status tk_bpe_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t *out, size_t *n_out) {
    *n_out = 0;
    char *withspace = NULL;
    if (t->add_prefix_space && len) {
        withspace = malloc(len + 1);
        if (!withspace) return sf_fail(SF_ERR_NOMEM, "tokenizer encode: out of memory for %zu bytes", len + 1);
        withspace[0] = ' ';
        memcpy(withspace + 1, text, len);
        text = withspace;
        len++;
    }
    const uint8_t *s = (const uint8_t *)text;
    tk_scratch sc = {0};
    sf_status st = SF_OK;
    size_t n = 0, start = 0;
    for (size_t i = 0; i < len && !st;) {
        int32_t hit = -1;
        if (t->special_first[s[i]]) {
            for (int k = 0; k < t->n_special; k++) {
                int32_t id = t->special[k];
                size_t m = t->raw_len[id];
                if (m <= len - i && memcmp(s + i, tk_raw(t, id), m) == 0) {
                    hit = id;
                    break;
                }
            }
        }
        if (hit < 0) {
            i++;
            continue;
        }
        st = encode_stretch(t, &sc, s, start, i, out, &n);
        out[n++] = hit;
        i += t->raw_len[hit];
        start = i;
    }
    if (!st) st = encode_stretch(t, &sc, s, start, len, out, &n);
    tk_scratch_free(&sc);
    free(withspace);
    *n_out = st ? 0 : n;
    return st;
}

/* ---- loading ---- */
/* Raw bytes of a byte-level vocab string: each character through the inverse of bytes_to_unicode;
 * characters outside that map (only in added tokens, in practice) are kept as their UTF-8 bytes. */
static size_t byte_decode(const byte_map *bm, const char *form, size_t n, char *raw) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t m = utf8_next((const uint8_t *)form, i, n, &cp);
        if (cp < 324 && bm->u2b[cp] >= 0) raw[k++] = (char)bm->u2b[cp];
        else memcpy(raw + k, form + i, m), k += m;
        i += m;
    }
    return k;
}

static int json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < (1 << 30)) || d != floor(d)) return 0;
    *id = (int32_t)d;
    return 1;
}

/* Defines the tokens of a {"string": id} vocab (and, when `added` is a HF added_tokens array, those). */
static sf_status set_vocab(sf_tokenizer *t, const char *file, const cJSON *vocab, const cJSON *added,
                           const byte_map *bm) {
    int32_t max_id = -1, id;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        if (!json_id(v, &id))
            return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': vocab entry \"%s\" has no valid id (expected an integer 0..2^30)",
                           file, v->string);
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(v, added) {
        if (!json_id(cJSON_GetObjectItemCaseSensitive(v, "id"), &id) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "content")))
            return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': an added_tokens entry lacks an integer \"id\" or a \"content\" string",
                           file);
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': the vocab is empty", file);
    sf_status st = tk_alloc_ids(t, max_id + 1);
    char *raw = NULL;
    size_t raw_cap = 0;
    cJSON_ArrayForEach(v, vocab) {
        if (st) break;
        json_id(v, &id);
        if (t->raw_len[id] != TK_HOLE) {
            st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': id %d is given to both \"%s\" and \"%s\"", file, (int)id,
                         tk_form(t, id), v->string);
            break;
        }
        size_t n = strlen(v->string);
        if (n + 1 > raw_cap) {
            raw_cap = 2 * n + 16;
            char *r = realloc(raw, raw_cap);
            if (!r) {
                st = sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory");
                break;
            }
            raw = r;
        }
        size_t m = byte_decode(bm, v->string, n, raw);
        st = tk_set_token(t, id, v->string, n, raw, m);
    }
    free(raw);
    cJSON_ArrayForEach(v, added) { /* an added token's text is itself, not byte-mapped */
        if (st) break;
        json_id(cJSON_GetObjectItemCaseSensitive(v, "id"), &id);
        const char *c = cJSON_GetObjectItemCaseSensitive(v, "content")->valuestring;
        st = tk_set_token(t, id, c, strlen(c), c, strlen(c));
    }
    return st;
}

static sf_status add_merge(sf_tokenizer *t, const char *file, size_t rank, const char *a, size_t na, const char *b,
                           size_t nb) {
    int32_t ia = tk_strmap_get(&t->form_map, a, na), ib = tk_strmap_get(&t->form_map, b, nb);
    int32_t im = tk_strmap_get2(&t->form_map, a, na, b, nb);
    if (ia < 0 || ib < 0)
        return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': merge %zu (\"%.*s\" \"%.*s\"): \"%.*s\" is not in the vocab", file,
                       rank, (int)na, a, (int)nb, b, ia < 0 ? (int)na : (int)nb, ia < 0 ? a : b);
    if (im < 0)
        return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': merge %zu: the merged token \"%.*s%.*s\" is not in the vocab",
                       file, rank, (int)na, a, (int)nb, b);
    if (rank > INT32_MAX) return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': too many merges", file);
    return tk_pairmap_put(&t->merges, ia, ib, (int32_t)rank, im);
}

/* Special tokens are tried longest first (then lowest id): insertion sort, there are few. */
static void sort_special(sf_tokenizer *t) {
    for (int i = 1; i < t->n_special; i++) {
        int32_t id = t->special[i];
        int j = i;
        for (; j > 0; j--) {
            int32_t o = t->special[j - 1];
            if (t->raw_len[o] > t->raw_len[id] || (t->raw_len[o] == t->raw_len[id] && o < id)) break;
            t->special[j] = o;
        }
        t->special[j] = id;
    }
}

/* After the tokens and maps exist: one-byte tokens, special tokens, BOS/EOS. */
static sf_status finish(sf_tokenizer *t, const byte_map *bm, const int32_t *special, int n_special) {
    t->kind = SF_TOK_BYTE_BPE;
    for (int b = 0; b < 256; b++) {
        char u[4];
        t->byte_id[b] = tk_strmap_get(&t->form_map, u, (size_t)utf8_put(bm->b2u[b], u));
    }
    t->special = malloc((n_special ? (size_t)n_special : 1) * sizeof *t->special);
    if (!t->special) return sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory");
    for (int k = 0; k < n_special; k++) {
        int32_t id = special[k];
        int dup = 0;
        for (int j = 0; j < t->n_special; j++) dup |= t->special[j] == id;
        if (dup || t->raw_len[id] == 0 || t->raw_len[id] == TK_HOLE) continue;
        t->special[t->n_special++] = id;
        t->special_first[(uint8_t)tk_raw(t, id)[0]] = 1;
    }
    sort_special(t);
    int32_t eot = tk_strmap_get(&t->form_map, "<|endoftext|>", 13);
    int32_t s = tk_strmap_get(&t->form_map, "<s>", 3), e = tk_strmap_get(&t->form_map, "</s>", 4);
    t->bos = eot >= 0 ? eot : s;
    t->eos = eot >= 0 ? eot : e;
    return SF_OK;
}

static const char *json_type_name(const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return "null";
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(v, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "(no type)";
}

static sf_status parse_json(const char *path, cJSON **root) {
    char *text;
    size_t len;
    sf_status st = tk_read_file(path, &text, &len);
    if (st) return st;
    *root = cJSON_ParseWithLength(text, len);
    if (!*root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        free(text);
        return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' is not valid JSON (error near byte %ld)", path, off);
    }
    free(text);
    return SF_OK;
}

/* HF pre_tokenizer: ByteLevel (use_regex true), possibly alone inside a Sequence. */
static sf_status check_pre_tokenizer(sf_tokenizer *t, const char *path, const cJSON *pre) {
    if (pre && !strcmp(json_type_name(pre), "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        if (cJSON_GetArraySize(list) == 1) pre = cJSON_GetArrayItem(list, 0);
    }
    if (!pre || cJSON_IsNull(pre) || strcmp(json_type_name(pre), "ByteLevel") != 0)
        return sf_fail(SF_ERR_FORMAT,
                       "tokenizer: '%s': pre_tokenizer %s is not supported (only ByteLevel with the GPT-2 split pattern)",
                       path, json_type_name(pre));
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
    if (cJSON_IsFalse(re))
        return sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': ByteLevel with use_regex false is not supported", path);
    t->add_prefix_space = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space"));
    t->strip_space = t->add_prefix_space;
    return SF_OK;
}

static int nonempty_string(const cJSON *v) { return cJSON_IsString(v) && v->valuestring[0]; }

sf_status tk_bpe_load_hf(sf_tokenizer *t, const char *path) {
    cJSON *root = NULL;
    sf_status st = parse_json(path, &root);
    if (st) return st;
    int32_t *special = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!cJSON_IsObject(model)) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' has no \"model\" object (not a Hugging Face tokenizer.json%s)", path,
                     cJSON_IsObject(root) && cJSON_IsNumber(root->child) ? "; an OpenAI vocab must be named encoder.json" : "");
        goto done;
    }
    if (cJSON_IsString(type) && strcmp(type->valuestring, "BPE") != 0) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': model type \"%s\" is not supported (only \"BPE\")", path,
                     type->valuestring);
        goto done;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': model needs a \"vocab\" object and a \"merges\" array", path);
        goto done;
    }
    if (norm && !cJSON_IsNull(norm)) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': normalizer %s is not supported", path, json_type_name(norm));
        goto done;
    }
    if (nonempty_string(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix")) ||
        nonempty_string(cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix"))) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': continuing_subword_prefix / end_of_word_suffix are not supported",
                     path);
        goto done;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"))) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': ignore_merges true is not supported", path);
        goto done;
    }
    if (added && !cJSON_IsArray(added)) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': added_tokens is not an array", path);
        goto done;
    }
    st = check_pre_tokenizer(t, path, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    byte_map bm;
    byte_map_init(&bm);
    if (!st) st = set_vocab(t, path, vocab, added, &bm);
    if (!st) st = tk_build_maps(t);
    int n_merges = cJSON_GetArraySize(merges);
    if (!st) st = tk_pairmap_init(&t->merges, (size_t)n_merges);
    size_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        if (st) break;
        if (cJSON_IsString(m)) { /* "a b" */
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': merge %zu \"%s\" is not two tokens separated by one space",
                             path, rank, m->valuestring);
                break;
            }
            st = add_merge(t, path, rank, m->valuestring, (size_t)(sp - m->valuestring), sp + 1, strlen(sp + 1));
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) { /* ["a", "b"] */
            const char *a = cJSON_GetArrayItem(m, 0)->valuestring, *b = cJSON_GetArrayItem(m, 1)->valuestring;
            st = add_merge(t, path, rank, a, strlen(a), b, strlen(b));
        } else {
            st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s': merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, rank);
        }
        rank++;
    }
    int n_added = added ? cJSON_GetArraySize(added) : 0;
    if (!st) {
        special = malloc((n_added ? (size_t)n_added : 1) * sizeof *special);
        if (!special) st = sf_fail(SF_ERR_NOMEM, "tokenizer: out of memory");
    }
    if (!st) {
        int k = 0;
        cJSON_ArrayForEach(m, added) json_id(cJSON_GetObjectItemCaseSensitive(m, "id"), &special[k++]);
        st = finish(t, &bm, special, n_added);
    }
done:
    free(special);
    cJSON_Delete(root);
    return st;
}

sf_status tk_bpe_load_openai(sf_tokenizer *t, const char *encoder_path, const char *merges_path) {
    cJSON *root = NULL;
    char *text = NULL;
    size_t len = 0;
    sf_status st = parse_json(encoder_path, &root);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' is not a JSON object of token -> id", encoder_path);
        goto done;
    }
    byte_map bm;
    byte_map_init(&bm);
    st = set_vocab(t, encoder_path, root, NULL, &bm);
    if (!st) st = tk_build_maps(t);
    if (!st) st = tk_read_file(merges_path, &text, &len);
    if (st) goto done;
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    st = tk_pairmap_init(&t->merges, n_lines);
    size_t rank = 0, line_no = 0;
    for (char *p = text; !st && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p)), *end = nl ? nl : text + len;
        line_no++;
        size_t n = (size_t)(end - p);
        if (n && p[n - 1] == '\r') n--;
        if (n && !(line_no == 1 && !strncmp(p, "#version", 8))) {
            char *sp = memchr(p, ' ', n);
            if (!sp || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1)) || sp == p || sp == p + n - 1)
                st = sf_fail(SF_ERR_FORMAT, "tokenizer: '%s' line %zu is not two tokens separated by one space",
                             merges_path, line_no);
            else
                st = add_merge(t, merges_path, rank++, p, (size_t)(sp - p), sp + 1, (size_t)(p + n - sp - 1));
        }
        p = end + 1;
    }
    if (!st) {
        int32_t eot = tk_strmap_get(&t->form_map, "<|endoftext|>", 13);
        st = finish(t, &bm, &eot, eot >= 0 ? 1 : 0);
    }
done:
    free(text);
    cJSON_Delete(root);
    return st;
}
