// The interleaved layouts of the block formats: rows in groups of
// kInterleave, each group's blocks side by side, for kernel sets whose
// products read several rows per activation load. Each layout is a type
// whose accessors are the only place its offsets are written; a row moves
// between the plain and the interleaved layout through one function
// (interleaved_row_copy), in both directions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "gemma2/block_formats.hpp"

GEMMA2_BEGIN_NAMESPACE

// Block-format rows may instead be stored interleaved, for kernel sets
// whose products read several rows per activation load (chosen at load:
// Kernels::interleaved_rows; the file is untouched and the bits per weight
// are the same). Rows go in groups of kInterleave (the last one padded with
// zero rows), block by block: each block of a group holds that block of
// all 8 rows, laid out so that one 64-byte load holds 8 bytes of each row,
// to multiply by 8 activation bytes broadcast to every row (llama.cpp's
// 8x8 repackings are the same idea).
//   Q8_0/Q4_0, per block of 32 columns: the 8 rows' f16 scales, then their
//     values in units of 8 bytes, unit-major:
//       [d_0 .. d_7 | unit 0 of rows 0..7 | unit 1 of rows 0..7 | ...]
//     Q4_0 values are the stored nibbles q + 8 (byte i: weights i and
//     i + 16), Q8_0 values are stored q + 128: unsigned, as
//     vpmaddubsw/vpdpbusd want them, with the offset taken out once per
//     block through Σx (interleaved_offset).
//   K-quants, per super-block of 256 columns: the header fields of the 8
//     rows side by side (d_0..d_7, then dmin_0..dmin_7 for Q4_K/Q5_K, then
//     each packed scale byte of the 8 rows), then 8 units of 32 weights:
//     the low 4 bits of the stored values as for Q4_0 (128 bytes), then
//     for Q5_K's fifth bit and Q6_K's fifth and sixth, one bit plane each:
//     4 masks of 64 bits, mask k's bit 8·row + i for weight 8k + i of the
//     unit, the same order as the vectors the nibbles fill.
constexpr int kInterleave = 8;
inline int interleaved_groups(int rows) { return (rows + kInterleave - 1) / kInterleave; }

// One block of 32 columns of a Q8_0/Q4_0 row group:
//   [d_0 .. d_7 | unit 0 of rows 0..7 | unit 1 of rows 0..7 | ...],
// a unit being 8 bytes of one row's values (BlockQ8_0/BlockQ4_0::qs).
struct Block32Group {
  DType dtype;  // Q8_0 or Q4_0
  static constexpr size_t kUnit = 8;
  constexpr size_t bytes() const { return kInterleave * block_bytes(dtype); }
  constexpr int units() const { return static_cast<int>(SplitRow<const std::byte*>::value_bytes(dtype) / kUnit); }
  static constexpr size_t scale_at(int row) { return sizeof(f16) * static_cast<size_t>(row); }
  static constexpr size_t unit_at(int unit, int row) {
    return kInterleave * sizeof(f16) + (static_cast<size_t>(unit) * kInterleave + static_cast<size_t>(row)) * kUnit;
  }
  // The offset o of the stored values: Q8_0 q + 128, Q4_0 q + 8 (unsigned).
  constexpr int32_t value_offset() const { return dtype == DType::Q8_0 ? 128 : 8; }
  // XORed into a plain Q8_0 byte it gives the stored one (q + 128), and back.
  constexpr uint8_t flip() const { return dtype == DType::Q8_0 ? 0x80 : 0; }
};

// One super-block of 256 columns of a K-quant row group: the header fields
// of the 8 rows side by side, then 8 units of 32 weights (unit_bytes each).
struct KQuantGroup {
  DType dtype;  // Q4_K, Q5_K or Q6_K
  constexpr size_t bytes() const { return kInterleave * block_bytes(dtype); }
  // Bit planes above the low 4 bits of the stored values (Q5_K's qh, Q6_K's qh).
  constexpr int planes() const { return dtype == DType::Q4_K ? 0 : dtype == DType::Q5_K ? 1 : 2; }
  // A row's header: its block without the values (d, dmin and scales; Q6_K: scales and d).
  constexpr size_t row_header_bytes() const {
    return block_bytes(dtype) - kSuperBlock / 2 - static_cast<size_t>(planes()) * kSuperBlock / 8;
  }
  constexpr size_t header_bytes() const { return kInterleave * row_header_bytes(); }
  // f16 field h (d, then dmin for Q4_K/Q5_K) of row `row`.
  static constexpr size_t half_at(int h, int row) { return sizeof(f16) * (kInterleave * static_cast<size_t>(h) + row); }
  constexpr int halves() const { return dtype == DType::Q6_K ? 1 : 2; }
  // Packed scale byte k of row `row`.
  constexpr size_t scale_at(int k, int row) const {
    return half_at(halves(), 0) + kInterleave * static_cast<size_t>(k) + static_cast<size_t>(row);
  }
  constexpr size_t unit_bytes() const { return 128 + 32 * static_cast<size_t>(planes()); }
  constexpr size_t unit_at(int s) const { return header_bytes() + static_cast<size_t>(s) * unit_bytes(); }
  // In a unit: the 8 bytes of row `row` in half u (weights 8u + i in the low
  // nibbles, 16 + 8u + i in the high), and mask byte k of plane p.
  static constexpr size_t nibbles_at(int u, int row) {
    return 64 * static_cast<size_t>(u) + 8 * static_cast<size_t>(row);
  }
  static constexpr size_t mask_at(int p, int k, int row) {
    return 128 + 32 * static_cast<size_t>(p) + 8 * static_cast<size_t>(k) + static_cast<size_t>(row);
  }
};

// The offset of an interleaved matrix's stored values (0 for the K-quants
// and for every plain row): the activations' X.start takes it out.
inline int32_t interleaved_offset(DType t) { return is_block32(t) ? Block32Group{t}.value_offset() : 0; }
// Bytes of one block of an interleaved group (the 8 rows' blocks).
inline size_t interleaved_block_bytes(DType t) { return kInterleave * block_bytes(t); }
// The free functions the layout types replace, for one release.
[[deprecated("use weights_per_block")]] inline int interleaved_block_cols(DType t) { return weights_per_block(t); }
[[deprecated("use KQuantGroup::planes")]] inline int kquant_planes(DType t) { return KQuantGroup{t}.planes(); }
[[deprecated("use KQuantGroup::header_bytes")]] inline size_t kquant_header_bytes(DType t) {
  return KQuantGroup{t}.header_bytes();
}
[[deprecated("use KQuantGroup::unit_bytes")]] inline size_t kquant_unit_bytes(DType t) {
  return KQuantGroup{t}.unit_bytes();
}

namespace detail {
// A bit field of 8 consecutive bytes of a layout and 8 consecutive values,
// in the direction asked (the destination starts at zero), so that each
// layout below is written once for reading and writing; one 64-bit word
// holds the 8 fields (shift + width and value_shift + width stay within a
// byte, so no bit crosses into a neighbour).
template <bool ToValues>
void move_bits(uint8_t* bytes, int shift, uint8_t* values, int value_shift, int width) {
  const uint64_t mask = ((uint64_t{1} << width) - 1) * 0x0101010101010101ull;
  uint64_t b, v;
  std::memcpy(&b, bytes, 8);
  std::memcpy(&v, values, 8);
  if constexpr (ToValues) {
    v |= ((b >> shift) & mask) << value_shift;
    std::memcpy(values, &v, 8);
  } else {
    b |= ((v >> value_shift) & mask) << shift;
    std::memcpy(bytes, &b, 8);
  }
}

// The stored values of a K-quant super-block (unsigned: Q4_K 0..15, Q5_K
// 0..31, Q6_K q + 32) in ggml's layout `b` (unpack_superblock), to v or back.
template <bool ToValues>
void kquant_plain_values(DType t, uint8_t* b, uint8_t* v) {
  if (t == DType::Q6_K) {
    for (int n = 0; n < 2; ++n)
      for (int part = 0; part < 4; ++part)
        for (int l = 0; l < 32; l += 8) {
          uint8_t* value = v + 128 * n + 32 * part + l;
          move_bits<ToValues>(b + offsetof(BlockQ6_K, ql) + 64 * n + 32 * (part & 1) + l, 4 * (part >> 1), value, 0, 4);
          move_bits<ToValues>(b + offsetof(BlockQ6_K, qh) + 32 * n + l, 2 * part, value, 4, 2);
        }
    return;
  }
  const bool five = t == DType::Q5_K;
  const size_t qs = five ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; l += 8) {
      move_bits<ToValues>(b + qs + 32 * (j / 2) + l, 4 * (j % 2), v + 32 * j + l, 0, 4);
      if (five) move_bits<ToValues>(b + offsetof(BlockQ5_K, qh) + l, j, v + 32 * j + l, 4, 1);
    }
  }
}

// Bit `bit` of 8 values (bytes) and the 8 bits of one mask byte, in the
// direction asked: multiplications gather the bits (bit i of byte i lands at
// bit 56 + i) or spread them, a byte per bit.
template <bool ToValues>
void move_plane(uint8_t& mask, int bit, uint8_t* values) {
  constexpr uint64_t ones = 0x0101010101010101ull;
  uint64_t w;
  std::memcpy(&w, values, 8);
  if constexpr (ToValues) {
    const uint64_t set = (mask * ones) & 0x8040201008040201ull;  // byte i: bit i of mask, in place
    w |= (((set + 0x7f7f7f7f7f7f7f7full) >> 7) & ones) << bit;
    std::memcpy(values, &w, 8);
  } else {
    mask = static_cast<uint8_t>((((w >> bit) & ones) * 0x0102040810204080ull) >> 56);
  }
}

// The same values of row `row` of an interleaved super-block `g`.
template <bool ToValues>
void kquant_group_values(DType t, int row, uint8_t* g, uint8_t* v) {
  const KQuantGroup layout{t};
  for (int s = 0; s < 8; ++s) {
    uint8_t *unit = g + layout.unit_at(s), *value = v + 32 * s;
    for (int u = 0; u < 2; ++u) {
      move_bits<ToValues>(unit + KQuantGroup::nibbles_at(u, row), 0, value + 8 * u, 0, 4);
      move_bits<ToValues>(unit + KQuantGroup::nibbles_at(u, row), 4, value + 16 + 8 * u, 0, 4);
    }
    for (int p = 0; p < layout.planes(); ++p)
      for (int k = 0; k < 4; ++k) move_plane<ToValues>(unit[KQuantGroup::mask_at(p, k, row)], 4 + p, value + 8 * k);
  }
}

// One super-block of row `row` between ggml's layout and its group's; the
// header fields (d, dmin, packed scales) are copied whole.
template <bool ToGroup>
void kquant_superblock_copy(DType t, int row, uint8_t* plain, uint8_t* group) {
  const bool six = t == DType::Q6_K;
  const KQuantGroup layout{t};
  // The plain block's f16 fields (d, dmin) and packed scales (Q4_K's are Q5_K's).
  const size_t halves_at = six ? offsetof(BlockQ6_K, d) : offsetof(BlockQ4_K, d);
  const size_t scales_at = six ? offsetof(BlockQ6_K, scales) : offsetof(BlockQ4_K, scales);
  const size_t scale_bytes = six ? sizeof(BlockQ6_K::scales) : sizeof(BlockQ4_K::scales);
  auto copy = [](uint8_t* p, uint8_t* g, size_t n) { ToGroup ? std::memcpy(g, p, n) : std::memcpy(p, g, n); };
  for (int h = 0; h < layout.halves(); ++h)
    copy(plain + halves_at + sizeof(f16) * static_cast<size_t>(h), group + KQuantGroup::half_at(h, row), 2);
  for (size_t k = 0; k < scale_bytes; ++k)
    copy(plain + scales_at + k, group + layout.scale_at(static_cast<int>(k), row), 1);
  uint8_t v[kSuperBlock] = {};
  if constexpr (ToGroup) {
    kquant_plain_values<true>(t, plain, v);
    kquant_group_values<false>(t, row, group, v);
  } else {
    kquant_group_values<true>(t, row, group, v);
    // The values are ORed in: clear ql and qh (Q6_K), qh and qs (Q5_K) or qs (Q4_K) first.
    std::fill(plain + (six ? 0 : offsetof(BlockQ4_K, qs)), plain + (six ? offsetof(BlockQ6_K, scales) : block_bytes(t)),
              uint8_t{0});
    kquant_plain_values<false>(t, plain, v);
  }
}

// Moves row r between the plain layout (`row`: Q8_0/Q4_0 values, then
// scales; K-quants as in the file) and the interleaved storage of its matrix
// (`storage`, Matrix::data, zeroed before rows are moved in): one function
// for both directions, so they cannot disagree.
template <bool ToGroup>
void interleaved_row_copy(DType t, int cols, int r, std::conditional_t<ToGroup, const std::byte*, std::byte*> row,
                          std::conditional_t<ToGroup, std::byte*, const std::byte*> storage) {
  const int j = r % kInterleave;
  const auto group = storage + static_cast<size_t>(r / kInterleave) * kInterleave * row_bytes(t, cols);
  if (is_kquant(t)) {  // the copy reads one side and writes the other
    auto bytes = [](auto* p) { return reinterpret_cast<uint8_t*>(const_cast<std::byte*>(p)); };
    for (int b = 0; b < cols / kSuperBlock; ++b)
      kquant_superblock_copy<ToGroup>(t, j, bytes(row + b * block_bytes(t)),
                                      bytes(group + b * interleaved_block_bytes(t)));
    return;
  }
  const Block32Group layout{t};
  const auto split = split_row(t, row, cols);
  const auto flip = static_cast<std::byte>(layout.flip());
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    auto gb = group + static_cast<size_t>(b) * layout.bytes();
    if constexpr (ToGroup) std::memcpy(gb + Block32Group::scale_at(j), split.scale(b), sizeof(f16));
    else std::memcpy(split.scale(b), gb + Block32Group::scale_at(j), sizeof(f16));
    for (int u = 0; u < layout.units(); ++u)
      for (size_t i = 0; i < Block32Group::kUnit; ++i) {
        auto& g = gb[Block32Group::unit_at(u, j) + i];
        auto& p = split.values(b)[Block32Group::kUnit * u + i];
        if constexpr (ToGroup) g = p ^ flip;
        else p = g ^ flip;
      }
  }
}

}  // namespace detail

GEMMA2_END_NAMESPACE
