// Gemma's tokenizer (a sentencepiece BPE model with byte fallback) and a
// streaming detokenizer for printing text as tokens arrive.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sentencepiece_processor.h>

#include "gemma2/io/file.hpp"
#include "gemma2/utf8.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {
// How a sentencepiece model treats spaces when it decodes: with
// add_dummy_prefix or remove_extra_whitespaces in its NormalizerSpec, the
// leading U+2581 of the text is dropped (Gemma's tokenizer has neither).
// Read from the serialized ModelProto (sentencepiece_model.proto:
// normalizer_spec is field 3, its add_dummy_prefix field 3 and
// remove_extra_whitespaces field 4, both true when absent), since
// sentencepiece's public header does not expose them.
struct LeadingSpace {
  bool dummy_prefix = true;
  bool remove_extra_whitespaces = true;
};

inline LeadingSpace leading_space(std::string_view proto) {
  LeadingSpace out;
  auto varint = [&](std::string_view s, size_t& i, uint64_t& v) {
    v = 0;
    for (int shift = 0; i < s.size() && shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(s[i++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (b < 0x80) return true;
    }
    return false;
  };
  // Calls field(number, wire type, varint value, bytes) for each field of a message.
  auto fields = [&](std::string_view s, auto&& field) {
    for (size_t i = 0; i < s.size();) {
      uint64_t key = 0, v = 0;
      if (!varint(s, i, key)) return;
      const auto wire = key & 7u;
      if (wire == 0 && !varint(s, i, v)) return;
      std::string_view bytes;
      if (wire == 2) {
        if (!varint(s, i, v) || v > s.size() - i) return;
        bytes = s.substr(i, static_cast<size_t>(v));
        i += static_cast<size_t>(v);
      } else if (wire == 1 || wire == 5) {
        i += wire == 1 ? 8 : 4;
      } else if (wire != 0) {
        return;
      }
      field(key >> 3, wire, v, bytes);
    }
  };
  fields(proto, [&](uint64_t number, uint64_t wire, uint64_t, std::string_view spec) {
    if (number != 3 || wire != 2) return;  // normalizer_spec; repeated occurrences merge
    fields(spec, [&](uint64_t n, uint64_t w, uint64_t v, std::string_view) {
      if (w == 0 && n == 3) out.dummy_prefix = v != 0;
      if (w == 0 && n == 4) out.remove_extra_whitespaces = v != 0;
    });
  });
  return out;
}

// The byte of a byte-fallback piece, spelled "<0xNN>".
inline int byte_piece_value(const std::string& piece) {
  auto hex = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  return piece.size() == 6 ? hex(piece[3]) * 16 + hex(piece[4]) : 0;
}

}  // namespace detail

// Gemma's sentencepiece tokenizer. Immutable after load; copies share it.
class Tokenizer {
 public:
  // A tokenizer.model is a few MB (Gemma 2's is 4 MB); a larger file is
  // refused before it is read.
  static constexpr uint64_t kMaxFileBytes = 256u << 20;

  // Loads a sentencepiece model file (tokenizer.model). The file is read
  // here, not by sentencepiece, whose file reading throws on paths that
  // are not regular files.
  static Result<Tokenizer> load(const std::string& path) {
    auto bytes = read_file(path, kMaxFileBytes);
    if (!bytes) return detail::err("cannot load tokenizer: ", bytes.message());
    return from_serialized(*bytes, path);
  }

  // A sentencepiece ModelProto held in memory (e.g. built from GGUF
  // metadata); `source` names it in errors.
  static Result<Tokenizer> from_serialized(const std::string& proto, const std::string& source) {
    return detail::guard("loading tokenizer " + source, [&]() -> Result<Tokenizer> {
      auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
      const auto status = sp->LoadFromSerializedProto(proto);
      if (!status.ok()) return detail::err("cannot load tokenizer ", source, ": ", status.ToString());
      auto t = from_processor(std::move(sp));
      if (t) t->leading_space_ = detail::leading_space(proto);
      return t;
    });
  }

  // Loads dir/tokenizer.model.
  static Result<Tokenizer> from_model_dir(const std::string& dir) { return load(dir + "/tokenizer.model"); }

 private:
  static Result<Tokenizer> from_processor(std::shared_ptr<sentencepiece::SentencePieceProcessor> sp) {
    Tokenizer t;
    t.sp_ = std::move(sp);
    // Special ids are looked up by piece: the real Gemma tokenizer has
    // <start_of_turn> = 106, smaller models trained the same way differ.
    t.bos_ = t.sp_->bos_id();
    t.eos_ = t.sp_->eos_id();
    t.start_of_turn_ = t.find_piece("<start_of_turn>");
    t.end_of_turn_ = t.find_piece("<end_of_turn>");
    return t;
  }

 public:
  int vocab_size() const { return sp_->GetPieceSize(); }
  // -1 when the vocabulary has no such piece (as for the two below).
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t start_of_turn_id() const { return start_of_turn_; }
  int32_t end_of_turn_id() const { return end_of_turn_; }

  // Token ids of UTF-8 text, without BOS. Chat markers such as
  // <start_of_turn> in the text become their single special tokens;
  // "<bos>" written as text does not (it is split like ordinary text).
  Result<std::vector<int32_t>> encode(std::string_view text) const {
    if (const size_t bad = detail::find_invalid_utf8(text); bad != std::string_view::npos)
      return detail::err("text is not valid UTF-8 (byte ", bad, ")");
    return detail::guard("tokenizing text", [&]() -> Result<std::vector<int32_t>> {
      std::vector<int> ids;
      const auto status = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
      if (!status.ok()) return detail::err("cannot tokenize text: ", status.ToString());
      return std::vector<int32_t>(ids.begin(), ids.end());
    });
  }

  // Ids of a prompt: exactly one BOS, then the text. A tokenizer without a
  // BOS piece (sentencepiece's bos_id -1, e.g. GGUF metadata without
  // tokenizer.ggml.bos_token_id) cannot start one.
  Result<std::vector<int32_t>> encode_prompt(std::string_view text) const {
    if (bos_ < 0) return detail::err("cannot make a prompt: the tokenizer has no BOS token");
    auto ids = encode(text);
    if (ids.ok()) ids->insert(ids->begin(), bos_);
    return ids;
  }

  // Text of ids, as sentencepiece decodes it: control tokens vanish,
  // invalid byte sequences become U+FFFD per byte.
  Result<std::string> decode(const std::vector<int32_t>& ids) const {
    if (Status s = check_ids(ids); !s) return Error{s.message()};
    return detail::guard("decoding ids", [&]() -> Result<std::string> {
      std::string text;
      const auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
      if (!status.ok()) return detail::err("cannot decode ids: ", status.ToString());
      return text;
    });
  }

  // The raw piece of an id ("▁Hello", "<0x0A>", "<start_of_turn>"); empty
  // for ids outside the vocabulary.
  std::string piece(int32_t id) const { return id >= 0 && id < vocab_size() ? sp_->IdToPiece(id) : std::string(); }

  enum class PieceKind { Text, Byte, Control, Unknown };
  // Control for ids outside the vocabulary (they decode to nothing).
  PieceKind kind(int32_t id) const {
    if (id < 0 || id >= vocab_size()) return PieceKind::Control;
    if (sp_->IsByte(id)) return PieceKind::Byte;
    if (sp_->IsControl(id)) return PieceKind::Control;
    if (sp_->IsUnknown(id)) return PieceKind::Unknown;
    return PieceKind::Text;
  }

  // Whether decoding drops the U+2581 that starts the text (see
  // detail::LeadingSpace), and every one that starts it rather than the first.
  const detail::LeadingSpace& leading_space() const { return leading_space_; }

  Status check_ids(const std::vector<int32_t>& ids) const {
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= vocab_size())
        return detail::err("token id ", ids[i], " at index ", i, " is outside the tokenizer's vocabulary [0, ",
                           vocab_size(), ")");
    return {};
  }

 private:
  int32_t find_piece(const char* p) const {
    const int id = sp_->PieceToId(p);
    return id == sp_->unk_id() ? -1 : id;
  }

  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;  // immutable, shared by copies
  int32_t bos_ = 2, eos_ = 1, start_of_turn_ = -1, end_of_turn_ = -1;
  detail::LeadingSpace leading_space_;
};

// Turns a stream of token ids into text without ever emitting a broken UTF-8
// sequence: bytes of byte-fallback pieces are held until their character is
// complete. The concatenated output equals Tokenizer::decode of all ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tok_(&tokenizer) {}

  // Text completed by this token (possibly empty). Out-of-range ids give an
  // empty string; the generation loop never produces them.
  std::string push(int32_t id) {
    if (id < 0 || id >= tok_->vocab_size()) return {};
    std::string out;
    const Tokenizer::PieceKind kind = tok_->kind(id);
    if (kind == Tokenizer::PieceKind::Byte) {
      bytes_.push_back(static_cast<char>(detail::byte_piece_value(tok_->piece(id))));
      drain(out, /*final=*/false);
      emitted_ = emitted_ || !out.empty();
      return out;
    }
    // Any other piece ends a pending byte sequence, as in decode; then, as
    // sentencepiece does, the text's leading space is dropped (see
    // Tokenizer::leading_space) from the first piece while nothing has been
    // printed and no leading space has been dropped yet.
    drain(out, true);
    if (bos_space_dropped_ || emitted_ || !out.empty()) at_start_ = false;
    bos_space_dropped_ = false;
    if (kind == Tokenizer::PieceKind::Unknown) out += " \xE2\x81\x87 ";  // " ⁇ "
    if (kind == Tokenizer::PieceKind::Text) {
      static constexpr std::string_view kMetaSpace = "\xE2\x96\x81";  // "▁" marks a space
      const std::string piece = tok_->piece(id);
      std::string_view p = piece;
      const detail::LeadingSpace& lead = tok_->leading_space();
      if (at_start_ && (lead.dummy_prefix || lead.remove_extra_whitespaces) && p.substr(0, 3) == kMetaSpace) {
        p.remove_prefix(kMetaSpace.size());
        bos_space_dropped_ = !lead.remove_extra_whitespaces;  // with it, every leading space goes
      }
      for (size_t i = 0; i < p.size();) {
        if (p.compare(i, kMetaSpace.size(), kMetaSpace) == 0) out += ' ', i += kMetaSpace.size();
        else out += p[i++];
      }
    }
    emitted_ = emitted_ || !out.empty();
    return out;
  }

  // Flushes bytes still held (an incomplete character becomes U+FFFD per byte).
  std::string finish() {
    std::string out;
    drain(out, true);
    return out;
  }

  // What the decoder remembers between tokens, for saving a reply in
  // progress (Generation::save): the bytes of a character not yet complete
  // and where the text stands for sentencepiece's leading-space rule.
  struct State {
    std::string bytes;
    bool emitted = false, at_start = true, bos_space_dropped = false;
  };
  State state() const { return {bytes_, emitted_, at_start_, bos_space_dropped_}; }
  void set_state(State s) {
    bytes_ = std::move(s.bytes);
    emitted_ = s.emitted;
    at_start_ = s.at_start;
    bos_space_dropped_ = s.bos_space_dropped;
  }

 private:
  void drain(std::string& out, bool final) {
    size_t i = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(bytes_.data());
    while (i < bytes_.size()) {
      const int len = detail::utf8_char_length(p + i, bytes_.size() - i);
      if (len == 0 && !final) break;  // wait for the rest of the character
      if (len <= 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for each byte that cannot be decoded
        ++i;
      } else {
        out.append(bytes_, i, static_cast<size_t>(len));
        i += static_cast<size_t>(len);
      }
    }
    bytes_.erase(0, i);
  }

  const Tokenizer* tok_;
  std::string bytes_;
  bool emitted_ = false;            // some text has been returned
  bool at_start_ = true;            // the next piece may still lose its leading space
  bool bos_space_dropped_ = false;  // the last piece did
};

GEMMA2_END_NAMESPACE
