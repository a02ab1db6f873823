/* The fused f32 gate kernels on vectors, built by gates.c once per ISA (graph/simd.h: ISA
 * is avx2 or avx512, V(op) the vector operations, VFN(name) the build's names): VW units
 * at a time with SLEEF's exp (the shared stable sigmoid) and its 3.5-ulp tanh (half the
 * cost of the 1-ulp one, far inside the f32-vs-f64 tolerance); the last (j1 - j0) % VW
 * units of a row go to the scalar kernels of gates.c. Equations: rnn.h. */

/* p[0 .. VW), or zeros when p is NULL */
VTARGET static inline VF VFN(loadz)(const float *p) { return p ? V(load)(p) : V(zero)(); }

VTARGET static void VFN(lstm_fwd)(const rnn_fwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0, jv = j0 + (j1 - j0) / VW * VW;
    const float *cp = s->c_prev, *bb = s->bias;
    float *ho = s->h_out, *co = s->c_out, *y = s->y;
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            carry_f32(s, b, j0, j1);
            continue;
        }
        float *a = (float *)s->gates + b * 4 * H;
        const float *r = s->rec ? (const float *)s->rec + b * s->rec_ld : NULL;
        for (int64_t j = j0; j < jv; j += VW) {
            VF ai = V(load)(a + j), af = V(load)(a + H + j), ag = V(load)(a + 2 * H + j), ao = V(load)(a + 3 * H + j);
            if (bb) {
                ai = V(add)(ai, V(load)(bb + j));
                af = V(add)(af, V(load)(bb + H + j));
                ag = V(add)(ag, V(load)(bb + 2 * H + j));
                ao = V(add)(ao, V(load)(bb + 3 * H + j));
            }
            if (r) {
                ai = V(add)(ai, V(load)(r + (j - j0r)));
                af = V(add)(af, V(load)(r + gs + (j - j0r)));
                ag = V(add)(ag, V(load)(r + 2 * gs + (j - j0r)));
                ao = V(add)(ao, V(load)(r + 3 * gs + (j - j0r)));
            }
            VF i = V(sigmoid)(ai), f = V(sigmoid)(af), gg = V(tanh35)(ag), o = V(sigmoid)(ao);
            VF c = V(fmadd)(f, VFN(loadz)(cp ? cp + b * H + j : NULL), V(mul)(i, gg));
            VF h = V(mul)(o, V(tanh35)(c));
            V(store)(a + j, i), V(store)(a + H + j, f), V(store)(a + 2 * H + j, gg), V(store)(a + 3 * H + j, o);
            V(store)(co + b * H + j, c);
            V(store)(ho + b * H + j, h);
            if (y) V(store)(y + b * s->y_ld + j, h);
        }
        if (jv < j1) lstm_fwd_f32(s, b, b + 1, jv, j1);
    }
}

VTARGET static void VFN(gru_fwd)(const rnn_fwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0, jv = j0 + (j1 - j0) / VW * VW;
    const float *hp = s->h_prev, *bhn = s->b_hn, *bb = s->bias;
    float *ho = s->h_out, *y = s->y;
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            carry_f32(s, b, j0, j1);
            continue;
        }
        float *a = (float *)s->gates + b * 4 * H;
        const float *r = s->rec ? (const float *)s->rec + b * s->rec_ld : NULL;
        for (int64_t j = j0; j < jv; j += VW) {
            VF ar = V(load)(a + j), az = V(load)(a + H + j), an = V(load)(a + 2 * H + j),
               ghn = VFN(loadz)(bhn ? bhn + j : NULL);
            if (bb) {
                ar = V(add)(ar, V(load)(bb + j));
                az = V(add)(az, V(load)(bb + H + j));
                an = V(add)(an, V(load)(bb + 2 * H + j));
            }
            if (r) {
                ar = V(add)(ar, V(load)(r + (j - j0r)));
                az = V(add)(az, V(load)(r + gs + (j - j0r)));
                ghn = V(add)(ghn, V(load)(r + 2 * gs + (j - j0r)));
            }
            VF rr = V(sigmoid)(ar), z = V(sigmoid)(az);
            VF n = V(tanh35)(V(fmadd)(rr, ghn, an));
            VF hprev = VFN(loadz)(hp ? hp + b * H + j : NULL);
            /* (1-z) n + z h = n + z (h - n) */
            VF h = V(fmadd)(z, V(sub)(hprev, n), n);
            V(store)(a + j, rr), V(store)(a + H + j, z), V(store)(a + 2 * H + j, n), V(store)(a + 3 * H + j, ghn);
            V(store)(ho + b * H + j, h);
            if (y) V(store)(y + b * s->y_ld + j, h);
        }
        if (jv < j1) gru_fwd_f32(s, b, b + 1, jv, j1);
    }
}

VTARGET static void VFN(lstm_bwd)(const rnn_bwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, jv = j0 + (j1 - j0) / VW * VW;
    const float *ct = s->c_t, *cp = s->c_prev, *dy = s->dy;
    float *dh = s->dh, *dc = s->dc;
    const VF one = V(set1)(1.0f);
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            zero_grads_f32(s, b, j0, j1);
            continue;
        }
        const float *a = (const float *)s->gates + b * 4 * H;
        float *da = (float *)s->dgi + b * 4 * H;
        for (int64_t j = j0; j < jv; j += VW) {
            VF i = V(load)(a + j), f = V(load)(a + H + j), gg = V(load)(a + 2 * H + j), o = V(load)(a + 3 * H + j);
            VF dht = V(load)(dh + b * H + j);
            if (dy) dht = V(add)(dht, V(load)(dy + b * s->dy_ld + j));
            VF tc = V(tanh35)(V(load)(ct + b * H + j));
            VF dct = V(fmadd)(V(mul)(dht, o), V(fnmadd)(tc, tc, one), V(load)(dc + b * H + j));
            VF cprev = VFN(loadz)(cp ? cp + b * H + j : NULL);
            V(store)(da + j, V(mul)(V(mul)(dct, gg), V(mul)(i, V(sub)(one, i))));
            V(store)(da + H + j, V(mul)(V(mul)(dct, cprev), V(mul)(f, V(sub)(one, f))));
            V(store)(da + 2 * H + j, V(mul)(V(mul)(dct, i), V(fnmadd)(gg, gg, one)));
            V(store)(da + 3 * H + j, V(mul)(V(mul)(dht, tc), V(mul)(o, V(sub)(one, o))));
            V(store)(dc + b * H + j, V(mul)(dct, f));
            V(store)(dh + b * H + j, V(zero)());
        }
        if (jv < j1) lstm_bwd_f32(s, b, b + 1, jv, j1);
    }
}

VTARGET static void VFN(gru_bwd)(const rnn_bwd_step *s, int64_t j0, int64_t j1) {
    int64_t H = s->H, jv = j0 + (j1 - j0) / VW * VW;
    const float *hp = s->h_prev, *dy = s->dy;
    float *dh = s->dh;
    const VF one = V(set1)(1.0f);
    for (int64_t b = 0; b < s->B; b++) {
        if (s->len && s->t >= s->len[b]) {
            zero_grads_f32(s, b, j0, j1);
            continue;
        }
        const float *a = (const float *)s->gates + b * 4 * H;
        float *di = (float *)s->dgi + b * 3 * H, *dg = (float *)s->dgh + b * 3 * H;
        for (int64_t j = j0; j < jv; j += VW) {
            VF r = V(load)(a + j), z = V(load)(a + H + j), n = V(load)(a + 2 * H + j), ghn = V(load)(a + 3 * H + j);
            VF dht = V(load)(dh + b * H + j);
            if (dy) dht = V(add)(dht, V(load)(dy + b * s->dy_ld + j));
            VF dan = V(mul)(V(mul)(dht, V(sub)(one, z)), V(fnmadd)(n, n, one));
            VF dar = V(mul)(V(mul)(dan, ghn), V(mul)(r, V(sub)(one, r)));
            VF hprev = VFN(loadz)(hp ? hp + b * H + j : NULL);
            VF daz = V(mul)(V(mul)(dht, V(sub)(hprev, n)), V(mul)(z, V(sub)(one, z)));
            V(store)(di + j, dar), V(store)(di + H + j, daz), V(store)(di + 2 * H + j, dan);
            V(store)(dg + j, dar), V(store)(dg + H + j, daz), V(store)(dg + 2 * H + j, V(mul)(dan, r));
            V(store)(dh + b * H + j, V(mul)(dht, z));
        }
        if (jv < j1) gru_bwd_f32(s, b, b + 1, jv, j1);
    }
}

static const gate_kernels VFN(gates) = {VFN(lstm_fwd), VFN(gru_fwd), VFN(lstm_bwd), VFN(gru_bwd)};
