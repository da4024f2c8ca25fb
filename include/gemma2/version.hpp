// Library version and the versioned inline namespace.
//
// Every public name lives in gemma2::v0 (inline), so two copies of the library
// built at different versions can sit in one process without clashing at link
// time, while users still write plain `gemma2::Name`.
#pragma once

#define GEMMA2_VERSION_MAJOR 0
#define GEMMA2_VERSION_MINOR 1
#define GEMMA2_VERSION_PATCH 0
#define GEMMA2_VERSION_STRING "0.1.0"

#define GEMMA2_BEGIN_NAMESPACE \
  namespace gemma2 {           \
  inline namespace v0 {
#define GEMMA2_END_NAMESPACE \
  }                          \
  }
