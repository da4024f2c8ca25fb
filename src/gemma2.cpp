// gemma2's compiled unit (CMake target gemma2::compiled): the instantiations
// that source files built with GEMMA2_COMPILED declare `extern template`
// (Gemma2Model<RuntimeConfig>'s loading and its forward pass over the
// built-in caches) and every kernel set, each compiled once for the whole
// program. See GEMMA2_COMPILED in include/gemma2/version.hpp.
#ifndef GEMMA2_COMPILED
#define GEMMA2_COMPILED
#endif
#define GEMMA2_COMPILED_IMPLEMENTATION
#define GEMMA2_KERNELS_IMPLEMENTATION
#include "gemma2/gemma2.hpp"
