// Included by the generated launcher file after the CUDA source (compiler.py).
//
// emu::describe(&kernel) tells Python each parameter's type, as the compiler sees it:
// "f4" float, "f8" double, "i4" int, "i8" long long, "u8" unsigned long long, "b1" bool,
// a leading "*" for a pointer ("*const f8" is const double*), "void" for void's, and
// "?N" for anything else of N bytes (structs, pointers to pointers), which Python refuses.
//
// emu::launch(&kernel, args, dims, reversed) runs every thread of every block of a grid,
// one after another, with CUDA's kernelParams convention: args[i] points at the value of
// parameter i. dims = {grid.x, grid.y, grid.z, block.x, block.y, block.z}. reversed != 0
// walks blocks and threads in the opposite order (the order-dependence check).
#pragma once

namespace emu {

template <typename T>
std::string code_of() {
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_pointer_t<T>;
        if constexpr (std::is_pointer_v<P>) {
            return "?" + std::to_string(sizeof(T));
        } else {
            return std::string("*") + (std::is_const_v<P> ? "const " : "") +
                   code_of<std::remove_cv_t<P>>();
        }
    } else if constexpr (std::is_void_v<T>) {
        return "void";
    } else if constexpr (std::is_same_v<T, bool>) {
        return "b1";
    } else if constexpr (std::is_floating_point_v<T>) {
        return "f" + std::to_string(sizeof(T));
    } else if constexpr (std::is_integral_v<T>) {
        return (std::is_signed_v<T> ? "i" : "u") + std::to_string(sizeof(T));
    } else {
        return "?" + std::to_string(sizeof(T));
    }
}

template <typename... P>
const char* describe(void (*)(P...)) {
    static const std::string text = [] {
        std::string s;
        ((s += code_of<P>() + ","), ...);
        return s;
    }();
    return text.c_str();
}

template <typename... P, std::size_t... I>
void run(void (*kernel)(P...), void** args, const unsigned* d, int reversed,
         std::index_sequence<I...>) {
    grid_dim = dim3(d[0], d[1], d[2]);
    block_dim = dim3(d[3], d[4], d[5]);
    const unsigned long long blocks = 1ULL * d[0] * d[1] * d[2];
    const unsigned long long threads = 1ULL * d[3] * d[4] * d[5];
    for (unsigned long long b = 0; b < blocks; ++b) {
        const unsigned long long bi = reversed ? blocks - 1 - b : b;
        block_idx = uint3{unsigned(bi % d[0]), unsigned(bi / d[0] % d[1]),
                          unsigned(bi / d[0] / d[1])};
        for (unsigned long long t = 0; t < threads; ++t) {
            const unsigned long long ti = reversed ? threads - 1 - t : t;
            thread_idx = uint3{unsigned(ti % d[3]), unsigned(ti / d[3] % d[4]),
                               unsigned(ti / d[3] / d[4])};
            kernel(*static_cast<P*>(args[I])...);
        }
    }
}

template <typename... P>
void launch(void (*kernel)(P...), void** args, const unsigned* dims, int reversed) {
    run(kernel, args, dims, reversed, std::index_sequence_for<P...>{});
}

}  // namespace emu
