// Every kernel set, compiled once for a program whose other translation
// units define GEMMA2_KERNELS_EXTERN (see gemma2/kernels/dispatch.hpp).
#ifndef GEMMA2_KERNELS_EXTERN
#define GEMMA2_KERNELS_EXTERN
#endif
#define GEMMA2_KERNELS_IMPLEMENTATION
#include "gemma2/kernels/dispatch.hpp"
