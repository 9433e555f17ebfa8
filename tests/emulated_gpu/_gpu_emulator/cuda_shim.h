// Force-included (g++ -include) before CUDA source compiled for the emulated device.
//
// Makes a CUDA C++ kernel file plain C++: the qualifiers expand to nothing (or to their
// host meaning), threadIdx/blockIdx/blockDim/gridDim are thread-local values that the
// generated launchers set before each simulated thread runs, and the CUDA math functions
// are the C++ library's float and double overloads. Features that depend on threads of a
// block running together (barriers, shared memory, atomics, warp shuffles) are poisoned:
// using one is a compile error naming it, because running the threads one at a time
// gives them no faithful meaning.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <math.h>
#include <string>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// __restrict__ is already a g++ keyword with CUDA's meaning

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

namespace emu {
inline thread_local uint3 thread_idx{0, 0, 0};
inline thread_local uint3 block_idx{0, 0, 0};
inline thread_local dim3 block_dim;
inline thread_local dim3 grid_dim;
}  // namespace emu

#define threadIdx (static_cast<const uint3&>(::emu::thread_idx))
#define blockIdx (static_cast<const uint3&>(::emu::block_idx))
#define blockDim (static_cast<const dim3&>(::emu::block_dim))
#define gridDim (static_cast<const dim3&>(::emu::grid_dim))
#define warpSize 32

// CUDA's math: the float and double overloads of <cmath>, plus the CUDA-only names
using std::exp; using std::log; using std::sqrt; using std::tanh; using std::fabs;
using std::fmax; using std::fmin; using std::pow; using std::floor; using std::ceil;
using std::sin; using std::cos; using std::log1p; using std::expm1; using std::erf;
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrt(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float x, float y) { return x / y; }
template <typename T> inline T min(T a, T b) { return b < a ? b : a; }
template <typename T> inline T max(T a, T b) { return a < b ? b : a; }

#pragma GCC poison __syncthreads __syncthreads_count __syncthreads_and __syncthreads_or
#pragma GCC poison __syncwarp __threadfence __threadfence_block __shared__ __constant__
#pragma GCC poison atomicAdd atomicSub atomicExch atomicMin atomicMax atomicInc atomicDec
#pragma GCC poison atomicCAS atomicAnd atomicOr atomicXor
#pragma GCC poison __shfl_sync __shfl_up_sync __shfl_down_sync __shfl_xor_sync
#pragma GCC poison __ballot_sync __any_sync __all_sync __activemask
