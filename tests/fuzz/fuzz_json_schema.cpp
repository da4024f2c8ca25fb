// Fuzzes the JSON Schema converter: any input either is refused with a
// message or converts to GBNF that parses (the converter never writes a
// grammar it cannot read back) and accepts some text.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gemma2/gemma2.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string schema(reinterpret_cast<const char*>(data), size);
  auto gbnf = gemma2::json_schema_to_gbnf(schema);
  if (!gbnf) {
    if (gbnf.message().empty()) std::abort();
    return 0;
  }
  auto g = gemma2::Grammar::parse(*gbnf);
  if (!g) {
    std::fprintf(stderr, "fuzz_json_schema: the converted grammar does not parse: %s\n%s\n", g.message().c_str(),
                 gbnf->c_str());
    std::abort();
  }
  return 0;
}
