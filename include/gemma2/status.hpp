// Errors are values at the public boundary (docs/ARCHITECTURE.md, "Errors"): every
// fallible call returns a Status or a Result<T> carrying a readable message.
// Nothing reachable from bad input throws through the API or aborts.
#pragma once

#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// The failure half of a Status/Result: a message that names the problem
// (file, field or tensor, and the offending values).
struct Error {
  std::string message;
};

// Outcome of a call that returns nothing. Converts to true on success.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : error_(std::move(e.message)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  // Empty on success.
  const std::string& message() const { return error_; }

 private:
  std::string error_;
  bool ok_ = true;
};

// Either a value or an Error. Access the value only after checking ok().
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error e) : error_(std::move(e.message)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const std::string& message() const { return error_; }
  Status status() const { return ok() ? Status() : Status(Error{error_}); }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  std::string error_;
};

// Where the library's diagnostics go. The library is silent unless the
// caller passes a sink (LoadOptions::log); it never writes to stdout/stderr.
enum class LogLevel { Info, Warning };
using LogSink = std::function<void(LogLevel, const std::string&)>;

namespace detail {
// Builds an Error from pieces: err("tensor ", name, " has shape ", s).
template <class... Parts>
Error err(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return Error{s.str()};
}

// A call into a dependency (sentencepiece, nlohmann::json, the standard
// library's threads) is a boundary: what it throws becomes an Error naming
// `what` (the file or input and the operation), so no exception reaches the
// host. `f` returns a Status or a Result. Built with -fno-exceptions, the
// dependencies cannot throw and this is a plain call.
template <class F>
auto guard(const std::string& what, F&& f) -> decltype(f()) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return err(what, ": out of memory");
  } catch (const std::exception& e) {
    return err(what, ": ", e.what());
  } catch (...) {
    return err(what, ": failed with an unknown exception");
  }
#else
  (void)what;
  return f();
#endif
}
}  // namespace detail

GEMMA2_END_NAMESPACE
