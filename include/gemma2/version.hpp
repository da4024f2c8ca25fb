// Library version and the versioned inline namespace.
//
// Every public name lives in an inline namespace named after the major and
// minor version (gemma2::v0_1 for 0.1.x), so two copies of the library at
// different versions can sit in one process (say, a host and a plug-in that
// each compiled their own) without clashing at link time, while users still
// write plain `gemma2::Name`. Patch releases keep the namespace: they are
// meant to be interchangeable.
#pragma once

#define GEMMA2_VERSION_MAJOR 0
#define GEMMA2_VERSION_MINOR 1
#define GEMMA2_VERSION_PATCH 0
#define GEMMA2_VERSION_STRING "0.1.0"

#define GEMMA2_DETAIL_ABI_NAME(major, minor) v##major##_##minor
#define GEMMA2_DETAIL_ABI(major, minor) GEMMA2_DETAIL_ABI_NAME(major, minor)
#define GEMMA2_ABI_NAMESPACE GEMMA2_DETAIL_ABI(GEMMA2_VERSION_MAJOR, GEMMA2_VERSION_MINOR)

#define GEMMA2_BEGIN_NAMESPACE \
  namespace gemma2 {           \
  inline namespace GEMMA2_ABI_NAMESPACE {
#define GEMMA2_END_NAMESPACE \
  }                          \
  }

// Build modes. Header-only by default: every source file compiles what it
// uses. A program that cares about build time links the compiled unit
// src/gemma2.cpp (CMake: gemma2::compiled) and defines GEMMA2_COMPILED in
// all its source files: the headers then declare the heavy instantiations
// (Gemma2Model<RuntimeConfig>'s loading and its forward pass over the
// built-in caches) `extern template`, and the kernel sets are compiled once
// (GEMMA2_KERNELS_EXTERN, kernels/dispatch.hpp). The compiled unit defines
// GEMMA2_COMPILED_IMPLEMENTATION, which turns those declarations into the
// explicit instantiations.
#if defined(GEMMA2_COMPILED) && !defined(GEMMA2_KERNELS_EXTERN)
#define GEMMA2_KERNELS_EXTERN
#endif
#if defined(GEMMA2_COMPILED_IMPLEMENTATION)
#define GEMMA2_EXTERN_TEMPLATE
#else
#define GEMMA2_EXTERN_TEMPLATE extern
#endif
// A few non-template functions are compiled once the same way: declared in
// the header, defined after `#if GEMMA2_DEFINE_COMPILED_PARTS` with
// GEMMA2_FUNC (inline header-only, an ordinary definition in the compiled
// unit), so that a GEMMA2_COMPILED file parses neither their bodies nor
// the headers only those need.
#if !defined(GEMMA2_COMPILED) || defined(GEMMA2_COMPILED_IMPLEMENTATION)
#define GEMMA2_DEFINE_COMPILED_PARTS 1
#else
#define GEMMA2_DEFINE_COMPILED_PARTS 0
#endif
#if defined(GEMMA2_COMPILED_IMPLEMENTATION)
#define GEMMA2_FUNC
#else
#define GEMMA2_FUNC inline
#endif
