/* Scenes for image captioning with spatial structure (issue #14): Fashion-MNIST objects
 * placed on a 96x96 canvas cut into a 3x3 grid of 32x32 cells, and captions from a small
 * grammar of spatial relations, with every valid caption of a scene as its references.
 *
 * A scene has 2 or 3 objects of distinct classes in distinct cells; each 28x28 object
 * sits in its cell at an offset of 0..4 pixels per axis (so objects never overlap), and
 * its box is kept for evaluating attention. A scene depends only on (seed, index) and
 * the source set (heed's Philox stream `index` under key `seed`): scene i can be made
 * without making the ones before it, on any thread.
 *
 * The grammar (docs/caption.md), class names one word each (fm_class_names):
 *   caption  := "a" C1 REL "a" C2                             (2 objects)
 *             | "a" C1 REL "a" C2 "and" "a" C3 REL "the" C4   (3 objects; C4 is C1 or C2)
 *   REL      := "left of" | "right of" | "above" | "below"
 *             | ("above" | "below") ("left" | "right") "of"
 * "X REL Y" is true when X's cell is in that direction from Y's: same row -> left/right
 * of, same column -> above/below, else the diagonal. Every object is named once with "a";
 * the second clause places the third object against one named before. A scene with 2
 * objects has 2 valid captions (either object first), one with 3 has 12. */
#ifndef CAPTION_SCENES_H
#define CAPTION_SCENES_H

#include "idx.h"

#include <stdbool.h>

#define SCENE_SIDE 96
#define SCENE_GRID 3
#define SCENE_CELL 32
#define SCENE_JITTER 4 /* an object's offset in its cell: 0..SCENE_JITTER pixels per axis */
#define SCENE_MAX_OBJECTS 3

typedef struct {
    int cls;            /* class 0..9 */
    int cell;           /* 0..8 row-major: row cell / 3, column cell % 3 */
    int x0, y0, x1, y1; /* its box on the canvas, [x0, x1) x [y0, y1), 28x28 */
    int64_t image;      /* its index in the source set */
} scene_object;

typedef struct {
    int n_objects;
    scene_object obj[SCENE_MAX_OBJECTS];
    uint8_t pixels[SCENE_SIDE * SCENE_SIDE]; /* row-major, 0 = background */
} scene;

/* A set's images grouped by class. Every class needs at least one image. */
typedef struct {
    const fm_set *set;
    int64_t *by_class[FM_CLASSES];
    int64_t count[FM_CLASSES];
} scene_source;

int scene_source_init(scene_source *src, const fm_set *set, char *err, size_t errlen);
void scene_source_free(scene_source *src);
/* Scene number index of the stream keyed by seed. */
void scene_make(const scene_source *src, uint64_t seed, uint64_t index, scene *out);

/* ---------------------------------------------------------------- vocabulary */

enum {
    TOK_PAD,
    TOK_START,
    TOK_END,
    TOK_UNK,
    TOK_A,
    TOK_THE,
    TOK_AND,
    TOK_LEFT,
    TOK_RIGHT,
    TOK_OF,
    TOK_ABOVE,
    TOK_BELOW,
    TOK_CLASS0, /* TOK_CLASS0 + c is class c's name */
    VOCAB_SIZE = TOK_CLASS0 + FM_CLASSES
};

const char *vocab_word(int id);             /* "<pad>", "<start>", "<end>", "<unk>", words; NULL out of range */
int vocab_id(const char *word, size_t len); /* TOK_UNK for a word not in the vocabulary */

#define CAPTION_MAX_TOKENS 16 /* the longest caption has 15 words */
#define SCENE_MAX_CAPTIONS 12

typedef struct {
    int n;
    int tok[CAPTION_MAX_TOKENS]; /* words only: no <start>, <end> or padding */
} caption;

/* Splits text at spaces into ids[0 .. n) (unknown words as TOK_UNK); n, or -1 when it has
 * more than max words. */
int caption_tokenize(const char *text, int *ids, int max);
/* The words of ids[0 .. n) joined by spaces (special tokens skipped) into buf; the length,
 * or -1 when buf is too small. */
int caption_text(const int *ids, int n, char *buf, size_t len);

/* The relation of a's cell to b's (distinct cells) as words: 1 to 3 tokens into rel[];
 * returns their count. */
int scene_relation(int cell_a, int cell_b, int rel[3]);
/* Every valid caption of s into out[0 .. count) (count <= SCENE_MAX_CAPTIONS), in a fixed
 * order; returns count. */
int scene_captions(const scene *s, caption *out);
/* The captions of s that name its objects in reading order (by cell: rows top to bottom,
 * each left to right), into out[0 .. count) in scene_captions' order; returns count: 1
 * for 2 objects, 2 for 3 (either anchor of the second clause). */
int scene_captions_in_reading_order(const scene *s, caption *out);
/* Whether tok[0 .. n) is a caption of the grammar that is true of s and names each of its
 * objects once (parsed here, independently of scene_captions). */
bool caption_valid(const scene *s, const int *tok, int n);

#endif
