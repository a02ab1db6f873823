/* Caption example: attention figures (figure.c). */
#ifndef CAPTION_FIGURE_H
#define CAPTION_FIGURE_H

#include "scenes.h"

#include <heed/core.h>
#include <heed/decode.h>

/* An SVG at path: the 96x96 scene pixels[0..1], then one panel per decoding step of h
 * (its attention rows over a grid x grid map, upsampled over the scene, each coloured over
 * [0, its maximum] so that a spread-out row still shows where it peaks) with the word under
 * it, and the title on top. Uses g for the panels (reset before and after). 0, or -1 with
 * err; nothing is left at path on error. */
int cap_figure_svg(heed_graph *g, const char *path, const float *pixels, const heed_hypothesis *h, int64_t grid,
                   const char *title, char *err, size_t errlen);

#endif
