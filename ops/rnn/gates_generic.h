/* The gate kernels for one element type, included by gates.c once with T = float and
 * once with T = double (FN(name) names the instance: name_f32, name_f64). Rows [b0, b1),
 * units [j0, j1). Equations and layouts: rnn.h. */

static inline T FN(sigm)(T x) { return 1 / (1 + exp(-x)); }

/* An inactive row (t past its length) carries its state and outputs zero. */
static void FN(carry)(const rnn_fwd_step *s, int64_t b, int64_t j0, int64_t j1) {
    int64_t H = s->H;
    const T *hp = s->h_prev, *cp = s->c_prev;
    T *ho = s->h_out, *co = s->c_out, *y = s->y;
    for (int64_t j = j0; j < j1; j++) {
        ho[b * H + j] = hp ? hp[b * H + j] : 0;
        if (co) co[b * H + j] = cp ? cp[b * H + j] : 0;
        if (y) y[b * s->y_ld + j] = 0;
    }
}

static void FN(lstm_fwd)(const rnn_fwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0;
    const T *hp = s->h_prev, *cp = s->c_prev, *bb = s->bias;
    T *ho = s->h_out, *co = s->c_out, *y = s->y;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(carry)(s, b, j0, j1);
            continue;
        }
        T *a = (T *)s->gates + b * 4 * H;
        const T *r = s->rec ? (const T *)s->rec + b * s->rec_ld : NULL; /* r[j - j0r]: unit j */
        for (int64_t j = j0; j < j1; j++) {
            T ai = a[j], af = a[H + j], ag = a[2 * H + j], ao = a[3 * H + j];
            if (bb) ai += bb[j], af += bb[H + j], ag += bb[2 * H + j], ao += bb[3 * H + j];
            if (r) ai += r[j - j0r], af += r[gs + j - j0r], ag += r[2 * gs + j - j0r], ao += r[3 * gs + j - j0r];
            T i = FN(sigm)(ai), f = FN(sigm)(af), gg = tanh(ag), o = FN(sigm)(ao);
            T c = f * (cp ? cp[b * H + j] : 0) + i * gg;
            T h = o * tanh(c);
            a[j] = i, a[H + j] = f, a[2 * H + j] = gg, a[3 * H + j] = o;
            co[b * H + j] = c;
            ho[b * H + j] = h;
            if (y) y[b * s->y_ld + j] = h;
        }
    }
    (void)hp;
}

static void FN(gru_fwd)(const rnn_fwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H, gs = s->rec_gs, j0r = s->rec_j0;
    const T *hp = s->h_prev, *bhn = s->b_hn, *bb = s->bias;
    T *ho = s->h_out, *y = s->y;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(carry)(s, b, j0, j1);
            continue;
        }
        T *a = (T *)s->gates + b * 4 * H;
        const T *r = s->rec ? (const T *)s->rec + b * s->rec_ld : NULL;
        for (int64_t j = j0; j < j1; j++) {
            T ar = a[j], az = a[H + j], an = a[2 * H + j], ghn = bhn ? bhn[j] : 0;
            if (bb) ar += bb[j], az += bb[H + j], an += bb[2 * H + j];
            if (r) ar += r[j - j0r], az += r[gs + j - j0r], ghn += r[2 * gs + j - j0r];
            T rr = FN(sigm)(ar), z = FN(sigm)(az);
            T n = tanh(an + rr * ghn);
            T h = (1 - z) * n + z * (hp ? hp[b * H + j] : 0);
            a[j] = rr, a[H + j] = z, a[2 * H + j] = n, a[3 * H + j] = ghn;
            ho[b * H + j] = h;
            if (y) y[b * s->y_ld + j] = h;
        }
    }
}

/* Inactive rows: no gradient into the gates; dh and dc pass through unchanged. */
static void FN(zero_grads)(const rnn_bwd_step *s, int64_t b, int64_t j0, int64_t j1) {
    int G = heed__rnn_gates(s->kind);
    int64_t H = s->H;
    for (int k = 0; k < G; k++)
        for (int64_t j = j0; j < j1; j++) {
            ((T *)s->dgi)[b * G * H + k * H + j] = 0;
            if (s->dgh != s->dgi) ((T *)s->dgh)[b * G * H + k * H + j] = 0;
        }
}

static void FN(lstm_bwd)(const rnn_bwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H;
    const T *ct = s->c_t, *cp = s->c_prev, *dy = s->dy;
    T *dh = s->dh, *dc = s->dc;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(zero_grads)(s, b, j0, j1);
            continue;
        }
        const T *a = (const T *)s->gates + b * 4 * H;
        T *da = (T *)s->dgi + b * 4 * H;
        for (int64_t j = j0; j < j1; j++) {
            T i = a[j], f = a[H + j], gg = a[2 * H + j], o = a[3 * H + j];
            T dht = dh[b * H + j] + (dy ? dy[b * s->dy_ld + j] : 0);
            T tc = tanh(ct[b * H + j]);
            T dct = dc[b * H + j] + dht * o * (1 - tc * tc);
            da[j] = dct * gg * i * (1 - i);
            da[H + j] = dct * (cp ? cp[b * H + j] : 0) * f * (1 - f);
            da[2 * H + j] = dct * i * (1 - gg * gg);
            da[3 * H + j] = dht * tc * o * (1 - o);
            dc[b * H + j] = dct * f;
            dh[b * H + j] = 0;
        }
    }
}

static void FN(gru_bwd)(const rnn_bwd_step *s, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
    int64_t H = s->H;
    const T *hp = s->h_prev, *dy = s->dy;
    T *dh = s->dh;
    for (int64_t b = b0; b < b1; b++) {
        if (s->len && s->t >= s->len[b]) {
            FN(zero_grads)(s, b, j0, j1);
            continue;
        }
        const T *a = (const T *)s->gates + b * 4 * H;
        T *di = (T *)s->dgi + b * 3 * H, *dgh = (T *)s->dgh + b * 3 * H;
        for (int64_t j = j0; j < j1; j++) {
            T r = a[j], z = a[H + j], n = a[2 * H + j], ghn = a[3 * H + j];
            T dht = dh[b * H + j] + (dy ? dy[b * s->dy_ld + j] : 0);
            T dan = dht * (1 - z) * (1 - n * n);
            T dar = dan * ghn * r * (1 - r);
            T daz = dht * ((hp ? hp[b * H + j] : 0) - n) * z * (1 - z);
            di[j] = dar, di[H + j] = daz, di[2 * H + j] = dan;
            dgh[j] = dar, dgh[H + j] = daz, dgh[2 * H + j] = dan * r;
            dh[b * H + j] = dht * z;
        }
    }
}
