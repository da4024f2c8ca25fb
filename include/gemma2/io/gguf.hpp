// GGUF (versions 2 and 3), the single-file format of llama.cpp: a header
// with typed metadata and tensor infos, padding to `general.alignment`, then
// the tensor data. Every count, length, offset and size is checked against
// the mapped file before it is used, so a hostile file gets an error naming
// the problem, never a read past the mapping or an allocation sized by it.
// Layout reference: ggml's docs/gguf.md.
//
// Everything GGUF: the format (gguf_format.hpp), its Gemma 2 mapping to a
// checkpoint (gguf_gemma.hpp), the tokenizer a file carries
// (gguf_tokenizer.hpp), writing files (gguf_writer.hpp).
#pragma once

#include "gemma2/io/gguf_format.hpp"
#include "gemma2/io/gguf_gemma.hpp"
#include "gemma2/io/gguf_tokenizer.hpp"
#include "gemma2/io/gguf_writer.hpp"
