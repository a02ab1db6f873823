/* The JSON reader of safetensors headers: see json.h. */
#include "json.h"

#include <string.h>

/* ---------------------------------------------------------------- pass 1: the check */

typedef struct {
    const char *p, *end;
    const char *bad; /* where the text stops being acceptable */
    json_error why;
} json_checker;

static bool jc_fail(json_checker *j, const char *at, json_error why) {
    j->bad = at;
    j->why = why;
    return false;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void jc_ws(json_checker *j) {
    while (j->p < j->end && is_ws(*j->p)) j->p++;
}

/* The value of the 4 hex digits at p, or -1. */
static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c) ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = 16 * v + d;
    }
    return v;
}

static bool jc_string(json_checker *j) {
    const char *p = j->p + 1, *end = j->end;
    while (p < end && *p != '"') {
        if ((unsigned char)*p < 0x20) return jc_fail(j, p, JSON_SYNTAX);
        if (*p != '\\') {
            p++;
            continue;
        }
        char e = end - p >= 2 ? p[1] : 0;
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
            p += 2;
            continue;
        }
        int cp = e == 'u' && end - p >= 6 ? hex4(p + 2) : -1;
        if (cp < 0) return jc_fail(j, p, JSON_SYNTAX);
        if (cp == 0) return jc_fail(j, p, JSON_NUL);
        if (cp >= 0xDC00 && cp <= 0xDFFF) return jc_fail(j, p, JSON_SURROGATE);
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate needs a low one next */
            int lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return jc_fail(j, p, JSON_SURROGATE);
            p += 6;
        }
        p += 6;
    }
    if (p >= end) return jc_fail(j, p, JSON_SYNTAX);
    j->p = p + 1;
    return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool jc_number(json_checker *j) {
    const char *p = j->p, *end = j->end;
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0') p++;
    else if (p < end && is_digit(*p)) while (p < end && is_digit(*p)) p++;
    else return jc_fail(j, p, JSON_SYNTAX);
    if (p < end && *p == '.') {
        if (++p >= end || !is_digit(*p)) return jc_fail(j, p, JSON_SYNTAX);
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return jc_fail(j, p, JSON_SYNTAX);
        while (p < end && is_digit(*p)) p++;
    }
    j->p = p;
    return true;
}

static bool jc_literal(json_checker *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return jc_fail(j, j->p, JSON_SYNTAX);
    j->p += n;
    return true;
}

static bool jc_value(json_checker *j, int depth);

/* The object or array at j->p: '{' "key": value, ... '}' or '[' value, ... ']'. */
static bool jc_container(json_checker *j, int depth) {
    if (depth > JSON_MAX_DEPTH) return jc_fail(j, j->p, JSON_DEPTH);
    char close = *j->p == '{' ? '}' : ']';
    j->p++;
    jc_ws(j);
    if (j->p < j->end && *j->p == close) return j->p++, true;
    for (;;) {
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"') return jc_fail(j, j->p, JSON_SYNTAX);
            if (!jc_string(j)) return false;
            jc_ws(j);
            if (j->p >= j->end || *j->p != ':') return jc_fail(j, j->p, JSON_SYNTAX);
            j->p++;
            jc_ws(j);
        }
        if (!jc_value(j, depth + 1)) return false;
        jc_ws(j);
        if (j->p < j->end && *j->p == close) return j->p++, true;
        if (j->p >= j->end || *j->p != ',') return jc_fail(j, j->p, JSON_SYNTAX);
        j->p++;
        jc_ws(j);
    }
}

static bool jc_value(json_checker *j, int depth) {
    if (j->p >= j->end) return jc_fail(j, j->p, JSON_SYNTAX);
    switch (*j->p) {
    case '{':
    case '[': return jc_container(j, depth);
    case '"': return jc_string(j);
    case 't': return jc_literal(j, "true");
    case 'f': return jc_literal(j, "false");
    case 'n': return jc_literal(j, "null");
    default: return jc_number(j);
    }
}

json_error json_check(const char *buf, size_t n, size_t *bad) {
    json_checker j = {.p = buf, .end = buf + n};
    jc_ws(&j);
    if (jc_value(&j, 1)) {
        jc_ws(&j);
        if (j.p == j.end) return JSON_OK;
        jc_fail(&j, j.p, JSON_TRAILING);
    }
    *bad = (size_t)(j.bad - buf);
    return j.why;
}

/* ---------------------------------------------------------------- pass 2: the walk */

char *json_ws(char *p) {
    while (is_ws(*p)) p++;
    return p;
}

char *json_skip(char *p) {
    int depth = 0;
    do {
        if (*p == '"') {
            for (p++; *p != '"'; p++)
                if (*p == '\\') p++;
            p++;
        } else if (*p == '{' || *p == '[') {
            depth++, p++;
        } else if (*p == '}' || *p == ']') {
            depth--, p++;
        } else if (depth == 0) { /* a number or a literal */
            while (*p && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p)) p++;
        } else {
            p++;
        }
    } while (depth > 0);
    return p;
}

char *json_take_string(char **pp) {
    char *r = *pp + 1, *w = r, *s = r;
    while (*r != '"') {
        if (*r != '\\') {
            *w++ = *r++;
            continue;
        }
        char e = r[1];
        r += 2;
        if (e != 'u') {
            *w++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            continue;
        }
        uint32_t cp = (uint32_t)hex4(r);
        r += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* + the low surrogate \uDCxx the check found */
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(r + 2) - 0xDC00);
            r += 6;
        }
        if (cp < 0x80) {
            *w++ = (char)cp;
        } else if (cp < 0x800) {
            *w++ = (char)(0xC0 | cp >> 6);
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *w++ = (char)(0xE0 | cp >> 12);
            *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *w++ = (char)(0xF0 | cp >> 18);
            *w++ = (char)(0x80 | (cp >> 12 & 0x3F));
            *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *w = 0;
    *pp = r + 1;
    return s;
}

static bool next_item(char **pp, char close, char **key) {
    char *p = *pp;
    if (*p == ',') p = json_ws(p + 1);
    if (*p == close) {
        *pp = p + 1;
        return false;
    }
    if (close == '}') {
        *key = json_take_string(&p);
        p = json_ws(json_ws(p) + 1); /* past the ':' */
    }
    *pp = p;
    return true;
}
bool json_next_member(char **pp, char **key) { return next_item(pp, '}', key); }
bool json_next_value(char **pp) { return next_item(pp, ']', NULL); }

int json_count(char *p) {
    char close = *p == '{' ? '}' : ']';
    int n = 0;
    for (p = json_ws(p + 1); *p != close; n++) {
        if (close == '}') p = json_ws(json_ws(json_skip(p)) + 1); /* the key and the ':' */
        p = json_ws(json_skip(p));
        if (*p == ',') p = json_ws(p + 1);
    }
    return n;
}

bool json_take_uint(char **pp, uint64_t *v) {
    char *p = *pp;
    *pp = json_skip(p);
    if (!is_digit(*p)) return false;
    uint64_t x = 0;
    for (; is_digit(*p); p++)
        if ((x = 10 * x + (uint64_t)(*p - '0')) > ((uint64_t)1 << 53)) return false;
    if (*p == '.' || *p == 'e' || *p == 'E') return false;
    *v = x;
    return true;
}

