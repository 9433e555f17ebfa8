// Fused LSTM cell, forward and backward: one launch per time step each, plus one
// launch per block of steps for the backward's local derivatives.
//
// The same equations as Backend.lstm_cell_forward / lstm_backward_factors /
// lstm_cell_backward_step in backends/base.py (see their docstrings); one thread per element
// (b, j) of the (B, H) state -- (s, b, j) of the (S, B, H) block for the factors --
// reading and writing the four gates of that element in its 4H gate row, PyTorch gate
// order i, f, g, o.
//
// Padded batches: the *_padded kernels take ``hold`` (one bool per batch row; per step and
// row for the factors), True where the row's sequence has ended. There the step keeps the
// previous state (forward), has zero local derivatives and f = 1 (factors), and hands its
// dh on unchanged (backward step). Folding these selects into the kernels keeps a step at
// one GEMM and one launch each way.
//
// The per-element work lives in LSTM_XP_DEVICE functions so that the tests can
// compile this file as plain C++ on a machine without a GPU and check the math
// against NumPy (tests/test_cuda_kernel_source.py); the __global__ wrappers only
// map threads to elements. Arrays are C-contiguous except dy, whose rows are dy_ld apart.

#ifdef LSTM_XP_HOST_ONLY  // the tests: element math as plain C++, no kernels
#define LSTM_XP_DEVICE inline
#else
#define LSTM_XP_DEVICE __device__ __forceinline__
#endif

template <typename T>
LSTM_XP_DEVICE T sigmoid_stable(T a) {
    // sigma(a) = (1 + tanh(a/2)) / 2: no exp, so no overflow for large |a|
    return T(0.5) * tanh(T(0.5) * a) + T(0.5);
}

// c = f c_prev + i g, h = o tanh(c); where hold[b]: c = c_prev, h = h_prev instead.
// hold == nullptr: no padding (h_prev is then not read). keep: write the activations
// [i f g o] back over the gates for backward; an eval forward needs none of them (0).
template <typename T>
LSTM_XP_DEVICE void cell_forward_element(long long n, int H, T* gates, const T* c_prev,
                                         T* c, T* h, const T* h_prev, const bool* hold,
                                         int keep) {
    const long long b = n / H;
    const int j = (int)(n - b * H);
    T* row = gates + b * 4LL * H;
    const T i = sigmoid_stable(row[j]);
    const T f = sigmoid_stable(row[H + j]);
    const T g = tanh(row[2 * H + j]);
    const T o = sigmoid_stable(row[3 * H + j]);
    const T c_new = f * c_prev[n] + i * g;
    if (keep) {
        row[j] = i;
        row[H + j] = f;
        row[2 * H + j] = g;
        row[3 * H + j] = o;
    }
    if (hold != nullptr && hold[b]) {
        c[n] = c_prev[n];
        h[n] = h_prev[n];
    } else {
        c[n] = c_new;
        h[n] = o * tanh(c_new);
    }
}

// alpha = o (1 - tanh(c)^2), f_keep = f, k = [g i (1-i), c_prev f (1-f), i (1-g^2),
// tanh(c) o (1-o)]; where hold[s*B + b]: alpha = 0, f_keep = 1, k = 0.
template <typename T>
LSTM_XP_DEVICE void backward_factors_element(long long n, int H, T* gates, const T* c_prev,
                                             const T* c, T* alpha, T* f_keep,
                                             const bool* hold) {
    const long long row_index = n / H;   // s * B + b
    const int j = (int)(n - row_index * H);
    T* row = gates + row_index * 4LL * H;
    if (hold != nullptr && hold[row_index]) {
        alpha[n] = T(0);
        f_keep[n] = T(1);
        row[j] = row[H + j] = row[2 * H + j] = row[3 * H + j] = T(0);
        return;
    }
    const T i = row[j];
    const T f = row[H + j];
    const T g = row[2 * H + j];
    const T o = row[3 * H + j];
    const T tanh_c = tanh(c[n]);
    alpha[n] = o * (T(1) - tanh_c * tanh_c);
    f_keep[n] = f;
    row[j] = g * i * (T(1) - i);
    row[H + j] = c_prev[n] * f * (T(1) - f);
    row[2 * H + j] = i * (T(1) - g * g);
    row[3 * H + j] = tanh_c * o * (T(1) - o);
}

// dh_t = dh + dy, dc_t = dc + dh_t alpha, da = [dc_t k_i, dc_t k_f, dc_t k_g, dh_t k_o],
// dc <- dc_t f; dh <- dh_t, or with hold: dh_t on held rows and 0 on the others (the
// recurrent GEMM then adds da W_hh, which is zero on held rows).
template <typename T>
LSTM_XP_DEVICE void cell_backward_element(long long n, int H, T* factors, const T* alpha,
                                          const T* f, T* dh, const T* dy, long long dy_ld,
                                          T* dc, const bool* hold) {
    const long long b = n / H;
    const int j = (int)(n - b * H);
    T* row = factors + b * 4LL * H;
    const T dh_t = dh[n] + dy[b * dy_ld + j];
    const T dc_t = dc[n] + dh_t * alpha[n];
    row[j] *= dc_t;
    row[H + j] *= dc_t;
    row[2 * H + j] *= dc_t;
    row[3 * H + j] *= dh_t;
    dc[n] = dc_t * f[n];
    dh[n] = (hold == nullptr || hold[b]) ? dh_t : T(0);
}

#ifndef LSTM_XP_HOST_ONLY
#define LSTM_XP_FOR_EACH(n, count) \
    for (long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x; n < (count); \
         n += (long long)blockDim.x * gridDim.x)

template <typename T>
__global__ void lstm_cell_forward(T* gates, const T* c_prev, T* c, T* h, long long BH, int H,
                                  int keep) {
    LSTM_XP_FOR_EACH(n, BH) cell_forward_element<T>(n, H, gates, c_prev, c, h, nullptr, nullptr,
                                                    keep);
}

template <typename T>
__global__ void lstm_cell_forward_padded(T* gates, const T* c_prev, T* c, T* h, const T* h_prev,
                                         const bool* hold, long long BH, int H, int keep) {
    LSTM_XP_FOR_EACH(n, BH) cell_forward_element(n, H, gates, c_prev, c, h, h_prev, hold, keep);
}

template <typename T>
__global__ void lstm_backward_factors(T* gates, const T* c_prev, const T* c, T* alpha,
                                      T* f_keep, long long SBH, int H) {
    LSTM_XP_FOR_EACH(n, SBH) backward_factors_element(n, H, gates, c_prev, c, alpha, f_keep,
                                                      (const bool*)nullptr);
}

template <typename T>
__global__ void lstm_backward_factors_padded(T* gates, const T* c_prev, const T* c, T* alpha,
                                             T* f_keep, const bool* hold, long long SBH, int H) {
    LSTM_XP_FOR_EACH(n, SBH) backward_factors_element(n, H, gates, c_prev, c, alpha, f_keep, hold);
}

template <typename T>
__global__ void lstm_cell_backward_step(T* factors, const T* alpha, const T* f, T* dh,
                                        const T* dy, long long dy_ld, T* dc, long long BH, int H) {
    LSTM_XP_FOR_EACH(n, BH) cell_backward_element(n, H, factors, alpha, f, dh, dy, dy_ld, dc,
                                                  (const bool*)nullptr);
}

template <typename T>
__global__ void lstm_cell_backward_step_padded(T* factors, const T* alpha, const T* f, T* dh,
                                               const T* dy, long long dy_ld, T* dc,
                                               const bool* hold, long long BH, int H) {
    LSTM_XP_FOR_EACH(n, BH) cell_backward_element(n, H, factors, alpha, f, dh, dy, dy_ld, dc, hold);
}
#endif
