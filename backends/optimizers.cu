// Fused optimizer steps: one launch updates a whole flat parameter buffer (lstm_xp.flat).
//
// The same equations as Backend.sgd_update / Backend.adam_update in backends/base.py (see
// their docstrings), one thread per parameter entry, in the same order of operations. The
// step-dependent scalars (learning rate, bias corrections) are computed on the host in
// double and passed in T, as the generic version's Python floats become T in NumPy/CuPy.

#define LSTM_XP_FOR_EACH(n, count) \
    for (long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x; n < (count); \
         n += (long long)blockDim.x * gridDim.x)

// p <- p - lr (g + weight_decay p)
template <typename T>
__global__ void sgd_step(T* p, const T* g, long long n, T lr, T weight_decay) {
    LSTM_XP_FOR_EACH(k, n) {
        const T grad = weight_decay != T(0) ? g[k] + weight_decay * p[k] : g[k];
        p[k] = p[k] - lr * grad;
    }
}

// g' = g + weight_decay p; v <- momentum v + g'; p <- p - lr (nesterov ? g' + momentum v : v)
template <typename T>
__global__ void sgd_momentum_step(T* p, const T* g, T* v, long long n, T lr, T momentum,
                                  T weight_decay, int nesterov) {
    LSTM_XP_FOR_EACH(k, n) {
        const T grad = weight_decay != T(0) ? g[k] + weight_decay * p[k] : g[k];
        const T vel = v[k] * momentum + grad;
        v[k] = vel;
        p[k] = p[k] - lr * (nesterov ? grad + momentum * vel : vel);
    }
}

// weight decay (mode 1: L2, g' = g + weight_decay p; mode 2: decoupled, p <- p keep),
// m <- b1 m + (1 - b1) g', v <- b2 v + (1 - b2) g'^2,
// p <- p - (lr_m_hat m) / (sqrt(v v_hat) + eps)   with lr_m_hat = lr / (1 - b1^t),
// v_hat = 1 / (1 - b2^t)
// (1 - b1 and 1 - b2 come from the host, computed in double as the generic version's)
template <typename T>
__global__ void adam_step(T* p, const T* g, T* m, T* v, long long n, T lr_m_hat, T v_hat,
                          T b1, T one_minus_b1, T b2, T one_minus_b2, T eps, T weight_decay,
                          T keep, int decay_mode) {
    LSTM_XP_FOR_EACH(k, n) {
        T param = p[k];
        T grad = g[k];
        if (decay_mode == 2) param = param * keep;
        if (decay_mode == 1) grad = grad + weight_decay * param;
        const T m_k = m[k] * b1 + one_minus_b1 * grad;
        const T v_k = v[k] * b2 + one_minus_b2 * (grad * grad);
        m[k] = m_k;
        v[k] = v_k;
        p[k] = param - (lr_m_hat * m_k) / (sqrt(v_k * v_hat) + eps);
    }
}
