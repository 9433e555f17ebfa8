// Fused LSTM cell, forward and backward: one launch per time step each, plus one
// launch per block of steps for the backward's local derivatives.
//
// The same equations as Backend.lstm_cell_forward / lstm_backward_factors /
// lstm_cell_backward_step in backends/base.py (see their docstrings); one thread per element
// (b, j) of the (B, H) state -- (s, b, j) of the (S, B, H) block for the factors --
// reading and writing the four gates of that element in its 4H gate row, PyTorch gate
// order i, f, g, o.
//
// The per-element work lives in LSTM_XP_DEVICE functions so that the tests can
// compile this file as plain C++ on a machine without a GPU and check the math
// against NumPy (tests/test_cuda_kernel_source.py); the __global__ wrappers only
// map threads to elements.

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

template <typename T>
LSTM_XP_DEVICE void cell_forward_element(long long n, int H, T* gates, const T* c_prev,
                                         T* c, T* h) {
    const long long b = n / H;
    const int j = (int)(n - b * H);
    T* row = gates + b * 4LL * H;
    const T i = sigmoid_stable(row[j]);
    const T f = sigmoid_stable(row[H + j]);
    const T g = tanh(row[2 * H + j]);
    const T o = sigmoid_stable(row[3 * H + j]);
    const T c_new = f * c_prev[n] + i * g;
    row[j] = i;
    row[H + j] = f;
    row[2 * H + j] = g;
    row[3 * H + j] = o;
    c[n] = c_new;
    h[n] = o * tanh(c_new);
}

template <typename T>
LSTM_XP_DEVICE void backward_factors_element(long long n, int H, T* gates, const T* c_prev,
                                             const T* c, T* alpha, T* f_keep) {
    const long long row_index = n / H;   // s * B + b
    const int j = (int)(n - row_index * H);
    T* row = gates + row_index * 4LL * H;
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

template <typename T>
LSTM_XP_DEVICE void cell_backward_element(long long n, int H, T* factors, const T* alpha,
                                          const T* f, const T* dh, T* dc) {
    const long long b = n / H;
    const int j = (int)(n - b * H);
    T* row = factors + b * 4LL * H;
    const T dh_n = dh[n];
    const T dc_t = dc[n] + dh_n * alpha[n];
    row[j] *= dc_t;
    row[H + j] *= dc_t;
    row[2 * H + j] *= dc_t;
    row[3 * H + j] *= dh_n;
    dc[n] = dc_t * f[n];
}

#ifndef LSTM_XP_HOST_ONLY
template <typename T>
__global__ void lstm_cell_forward(T* gates, const T* c_prev, T* c, T* h, long long BH, int H) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x; n < BH; n += stride) {
        cell_forward_element(n, H, gates, c_prev, c, h);
    }
}

template <typename T>
__global__ void lstm_backward_factors(T* gates, const T* c_prev, const T* c, T* alpha,
                                      T* f_keep, long long SBH, int H) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x; n < SBH; n += stride) {
        backward_factors_element(n, H, gates, c_prev, c, alpha, f_keep);
    }
}

template <typename T>
__global__ void lstm_cell_backward_step(T* factors, const T* alpha, const T* f, const T* dh, T* dc,
                                   long long BH, int H) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x; n < BH; n += stride) {
        cell_backward_element(n, H, factors, alpha, f, dh, dc);
    }
}
#endif
