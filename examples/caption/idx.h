/* IDX files (the format of MNIST and Fashion-MNIST), read through zlib so a file may be
 * gzip-compressed (as Debian ships them) or plain, and Fashion-MNIST splits made of two
 * of them. Every rule is checked against the bytes actually there, and an error message
 * names the file and the rule it breaks. */
#ifndef CAPTION_IDX_H
#define CAPTION_IDX_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#define IDX_MAX_DIMS 4
#define IDX_MAX_BYTES ((int64_t)1 << 31) /* the most data one file may announce */

/* An IDX array of unsigned bytes: dims[0 .. ndim), count = their product. */
typedef struct {
    int ndim;
    int64_t dims[IDX_MAX_DIMS];
    int64_t count;
    uint8_t *data; /* count bytes (NULL when count is 0) */
} idx_array;

/* Reads one IDX array from f (opened with gzopen or gzdopen; not closed here). The layout:
 * two zero bytes, the type byte 0x08 (unsigned bytes: the only type read), the number of
 * dims (1..IDX_MAX_DIMS), each dim as a big-endian uint32, then exactly count data bytes
 * (at most IDX_MAX_BYTES), then the end of the file. name is the file's name in messages.
 * Returns 0, or -1 with a message in err (out is then empty). Memory grows with the bytes
 * read, never ahead of them, so a header announcing more than the file holds costs
 * nothing. */
int idx_read(gzFile f, const char *name, idx_array *out, char *err, size_t errlen);
/* idx_read on the file at path. */
int idx_load(const char *path, idx_array *out, char *err, size_t errlen);
void idx_free(idx_array *a);

/* ---------------------------------------------------------------- Fashion-MNIST */

#define FM_SIDE 28
#define FM_CLASSES 10

/* One split: n images of 28x28 bytes (0 = background) and their classes 0..9. */
typedef struct {
    int64_t n;
    uint8_t *images; /* [n][28][28] */
    uint8_t *labels; /* [n] */
} fm_set;

/* The class names, one word each: top, trouser, pullover, dress, coat, sandal, shirt,
 * sneaker, bag, boot (Fashion-MNIST's T-shirt/top ... Ankle boot). */
extern const char *const fm_class_names[FM_CLASSES];

/* Checks images [n, 28, 28] and labels [n] (n >= 1, every label < 10) and takes their
 * data (both arrays are left empty on success; on error they are untouched). The names
 * are the files', for messages. */
int fm_from_arrays(idx_array *images, const char *images_name, idx_array *labels, const char *labels_name, fm_set *out,
                   char *err, size_t errlen);
/* The split "train" or "t10k" from dir, as the dataset ships it:
 * dir/<split>-images-idx3-ubyte.gz and dir/<split>-labels-idx1-ubyte.gz. */
int fm_load(const char *dir, const char *split, fm_set *out, char *err, size_t errlen);
void fm_free(fm_set *s);

#endif
