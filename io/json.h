/* A small JSON reader for safetensors headers (io/json.c) that builds no tree, so
 * reading a header needs memory in proportion to what it describes, not to its number of
 * tokens (a tree of cJSON nodes took 41x the header for a header of "0," values).
 *
 * Two passes over a NUL-terminated buffer:
 *   1. json_check: the text is RFC 8259 JSON -- one value, nothing after it, nested at
 *      most JSON_MAX_DEPTH deep, no \u0000 escape, no lone UTF-16 surrogate -- checked
 *      without allocating anything;
 *   2. the walk: the functions below read the checked text again. They trust the check
 *      (they assume well-formed text) and decode the strings they take in place, since
 *      an escape is never shorter than the bytes it stands for; so a string must be taken
 *      at most once, and a value holding a taken string must not be skipped afterwards.
 * Not installed. */
#ifndef HEED_JSON_H
#define HEED_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum { JSON_OK, JSON_SYNTAX, JSON_TRAILING, JSON_NUL, JSON_SURROGATE, JSON_DEPTH } json_error;

/* Pass 1 over buf[0..n): JSON_OK, or the kind of error and its byte offset in *bad
 * (JSON_TRAILING: bytes after a complete value). */
json_error json_check(const char *buf, size_t n, size_t *bad);

/* Pass 2. p always points into checked text. */
char *json_ws(char *p);   /* past whitespace */
char *json_skip(char *p); /* past the value at p */
/* Decodes the string at *pp in place, NUL-terminates it and moves *pp past it. */
char *json_take_string(char **pp);
/* The number at *pp if it is written as an integer in [0, 2^53]; moves *pp past it. */
bool json_take_uint(char **pp, uint64_t *v);
/* Values in the array, or members in the object, at p (nothing is taken). */
int json_count(char *p);
/* Iteration over the object (array) whose opening bracket is at p:
 *     for (p = json_ws(p + 1); json_next_member(&p, &key); p = json_ws(p)) ...
 * the body moves p past the member's value; key is the member's name, taken. After the
 * loop p is past the closing bracket. */
bool json_next_member(char **pp, char **key);
bool json_next_value(char **pp);

#endif
