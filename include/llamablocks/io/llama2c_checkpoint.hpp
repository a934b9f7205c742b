// Llama2cCheckpoint: reader of llama2.c's legacy checkpoint format (the `.bin` that karpathy/llama2.c's
// run.c loads, e.g. stories15M.bin), little-endian:
//
//   header   7 × int32   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len
//                        (vocab_size < 0: the output head is not tied, a separate wcls follows)
//   then float32 arrays, in this order (head_dim = dim / n_heads, L = n_layers, PyTorch Linear
//   layout [out_features, in_features]):
//     token_embedding   [vocab_size, dim]
//     rms_att           [L, dim]
//     wq                [L, n_heads * head_dim, dim]
//     wk, wv            [L, n_kv_heads * head_dim, dim]       (each)
//     wo                [L, dim, n_heads * head_dim]
//     rms_ffn           [L, dim]
//     w1 (gate)         [L, hidden_dim, dim]
//     w2 (down)         [L, dim, hidden_dim]
//     w3 (up)           [L, hidden_dim, dim]
//     rms_final         [dim]
//     freq_cis_real     [max_seq_len, head_dim / 2]           (unused: RoPE tables are recomputed)
//     freq_cis_imag     [max_seq_len, head_dim / 2]           (unused)
//     wcls              [vocab_size, dim]                     (only when the header's vocab_size < 0)
//
// The file must be exactly as long as the header's shapes say. It is read with fread into one
// 64-byte aligned buffer held by a shared_ptr; every weight is a Tensor that borrows its slice of
// that buffer (no copy), so Parameter::assign() adopts it in place and the buffer lives as long as
// the last tensor that uses it. The numerics not stored in the file are llama2.c's: RMSNorm eps 1e-5,
// RoPE theta 10000, interleaved RoPE pairs (2j, 2j+1).
#pragma once

#include "llamablocks/core/config.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/io/format_error.hpp"
#include "llamablocks/io/little_endian.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

namespace llamablocks {

/// The seven int32 fields at the start of a llama2.c checkpoint, as stored.
struct Llama2cHeader {
  std::int32_t dim = 0;          ///< width of the residual stream
  std::int32_t hidden_dim = 0;   ///< SwiGLU inner width
  std::int32_t n_layers = 0;     ///< decoder layers
  std::int32_t n_heads = 0;      ///< query heads
  std::int32_t n_kv_heads = 0;   ///< key/value heads
  std::int32_t vocab_size = 0;   ///< tokens; negative: untied output head (wcls) stored at the end
  std::int32_t max_seq_len = 0;  ///< longest sequence (llama2.c's seq_len)
};

namespace detail::llama2c {

inline constexpr std::size_t header_bytes = 7 * sizeof(std::int32_t);

inline std::int32_t load_i32_le(const unsigned char* bytes) {
  const auto bits = load_le<std::uint32_t>(bytes);
  std::int32_t value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// Counts floats of the weight arrays; every product and sum is checked against INT64_MAX so a
/// hostile header cannot wrap the expected size around to the real one.
class ElementCounter {
 public:
  explicit ElementCounter(const std::string& where) : where_(where) {}

  std::int64_t product(const char* field, std::int64_t a, std::int64_t b) const {
    if (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a) overflow(field);
    return a * b;
  }
  /// Reserves `count` floats for `field` and returns their offset (in floats from the first one).
  std::int64_t take(const char* field, std::int64_t count) {
    if (count > std::numeric_limits<std::int64_t>::max() - total_) overflow(field);
    const std::int64_t offset = total_;
    total_ += count;
    return offset;
  }
  std::int64_t total() const { return total_; }

 private:
  [[noreturn]] void overflow(const char* field) const {
    throw format_error(detail::concat(where_, ": the size of ", field,
                              " overflows 64 bits for the header's shapes"));
  }
  std::string where_;
  std::int64_t total_ = 0;
};

}  // namespace detail::llama2c

/// A llama2.c `.bin` checkpoint read into memory, its weights exposed as borrowed float32 tensors.
///
/// \code
/// auto checkpoint = Llama2cCheckpoint::read("stories15M.bin");
/// ModelConfig config = checkpoint.config();          // validated; eps 1e-5, theta 10000
/// block.attention().wq().assign(checkpoint.wq(0));    // adopts the file's memory, no copy
/// \endcode
///
/// Copying a Llama2cCheckpoint is cheap: copies share the buffer.
class Llama2cCheckpoint {
 public:
  /// Reads and validates the checkpoint at `path`.
  /// \throws format_error naming the file, the field and its value when the file cannot be opened
  ///         or read, a header field is not positive, n_heads does not divide dim, n_kv_heads does
  ///         not divide n_heads, head_dim is odd, or the file size differs from the one the header's
  ///         shapes give (including sizes that overflow 64 bits).
  static Llama2cCheckpoint read(const std::string& path) {
    const std::string where = "llama2.c checkpoint '" + path + "'";
    detail::require<format_error>(detail::host_is_little_endian(), where,
                                  ": only little-endian hosts are supported");
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                               &std::fclose);
    if (!file)
      throw format_error(detail::concat(where, ": cannot open: ",
                                std::generic_category().message(errno)));
    // The size first, so a hostile header is refused before anything large is allocated.
    if (std::fseek(file.get(), 0, SEEK_END) != 0)
      throw format_error(detail::concat(where, ": cannot seek to the end of the file"));
    const long end = std::ftell(file.get());
    if (end < 0) throw format_error(detail::concat(where, ": cannot tell the file size"));
    std::rewind(file.get());
    const auto file_bytes = static_cast<std::uint64_t>(end);
    detail::require<format_error>(file_bytes >= detail::llama2c::header_bytes, where,
                                  ": file size ", file_bytes, " bytes is shorter than the ",
                                  detail::llama2c::header_bytes, "-byte header");

    std::array<unsigned char, detail::llama2c::header_bytes> raw{};
    detail::require<format_error>(
        std::fread(raw.data(), 1, raw.size(), file.get()) == raw.size(), where,
        ": cannot read the header");
    Llama2cCheckpoint checkpoint;
    checkpoint.path_ = path;
    checkpoint.header_ = parse_header(raw.data());
    const Layout layout = checkpoint.validate(where, file_bytes);
    checkpoint.layout_ = layout;

    const auto bytes = static_cast<std::size_t>(file_bytes);
    void* buffer = detail::allocator<cpu>::allocate(bytes);
    std::shared_ptr<void> owner(buffer, [](void* p) { detail::allocator<cpu>::deallocate(p); });
    std::memcpy(buffer, raw.data(), raw.size());
    const std::size_t rest = bytes - raw.size();
    detail::require<format_error>(
        std::fread(static_cast<unsigned char*>(buffer) + raw.size(), 1, rest, file.get()) == rest,
        where, ": cannot read the ", rest, " bytes of weights after the header");
    checkpoint.storage_ = std::move(owner);
    checkpoint.weights_ = reinterpret_cast<float*>(static_cast<unsigned char*>(buffer) +
                                                   detail::llama2c::header_bytes);
    return checkpoint;
  }

  const std::string& path() const { return path_; }
  /// The header as stored (vocab_size keeps its sign).
  const Llama2cHeader& header() const { return header_; }
  /// Whether the output head is the token embedding (the header's vocab_size > 0).
  bool tied_output() const { return header_.vocab_size > 0; }
  /// Size of the file, = size of the buffer, in bytes.
  std::uint64_t file_bytes() const { return layout_.file_bytes; }
  /// The buffer every tensor borrows from (header included).
  const std::shared_ptr<const void>& storage() const { return storage_; }

  /// The model's hyper-parameters: the header's shapes, head_dim = dim / n_heads,
  /// ffn_hidden_dim = hidden_dim, vocab_size = |vocab_size|, and llama2.c's fixed numerics
  /// (norm_eps 1e-5, rope_theta 10000, interleaved RoPE, no RoPE scaling).
  ModelConfig config() const {
    ModelConfig config;
    config.dim = header_.dim;
    config.n_layers = header_.n_layers;
    config.n_heads = header_.n_heads;
    config.n_kv_heads = header_.n_kv_heads;
    config.head_dim = header_.dim / header_.n_heads;
    config.vocab_size = layout_.vocab_size;
    config.ffn_hidden_dim = header_.hidden_dim;
    config.norm_eps = 1e-5;
    config.rope_theta = 10000;
    config.rope_layout = RopeLayout::interleaved;
    config.max_seq_len = header_.max_seq_len;
    config.validate();
    return config;
  }

  /// \name Weights: borrowed tensors over the buffer (writing through them changes the buffer).
  /// Per-layer accessors throw range_error when `layer` is not in [0, n_layers).
  /// @{
  Tensor<float, 2> token_embedding() const {  // [vocab_size, dim]
    return matrix(layout_.token_embedding, layout_.vocab_size, header_.dim);
  }
  Tensor<float, 1> rms_att(index_t layer) const {  // [dim]
    return vector(layer_offset(layout_.rms_att, layer, header_.dim), header_.dim);
  }
  Tensor<float, 2> wq(index_t layer) const {  // [n_heads * head_dim, dim]
    return matrix(layer_offset(layout_.wq, layer, q_dim() * header_.dim), q_dim(), header_.dim);
  }
  Tensor<float, 2> wk(index_t layer) const {  // [n_kv_heads * head_dim, dim]
    return matrix(layer_offset(layout_.wk, layer, kv_dim() * header_.dim), kv_dim(), header_.dim);
  }
  Tensor<float, 2> wv(index_t layer) const {  // [n_kv_heads * head_dim, dim]
    return matrix(layer_offset(layout_.wv, layer, kv_dim() * header_.dim), kv_dim(), header_.dim);
  }
  Tensor<float, 2> wo(index_t layer) const {  // [dim, n_heads * head_dim]
    return matrix(layer_offset(layout_.wo, layer, header_.dim * q_dim()), header_.dim, q_dim());
  }
  Tensor<float, 1> rms_ffn(index_t layer) const {  // [dim]
    return vector(layer_offset(layout_.rms_ffn, layer, header_.dim), header_.dim);
  }
  Tensor<float, 2> w1(index_t layer) const {  // [hidden_dim, dim]
    return matrix(layer_offset(layout_.w1, layer, ffn_size()), header_.hidden_dim, header_.dim);
  }
  Tensor<float, 2> w2(index_t layer) const {  // [dim, hidden_dim]
    return matrix(layer_offset(layout_.w2, layer, ffn_size()), header_.dim, header_.hidden_dim);
  }
  Tensor<float, 2> w3(index_t layer) const {  // [hidden_dim, dim]
    return matrix(layer_offset(layout_.w3, layer, ffn_size()), header_.hidden_dim, header_.dim);
  }
  Tensor<float, 1> rms_final() const {  // [dim]
    return vector(layout_.rms_final, header_.dim);
  }
  /// The output head [vocab_size, dim]: wcls, or the token embedding when tied_output().
  Tensor<float, 2> wcls() const {
    return matrix(layout_.wcls, layout_.vocab_size, header_.dim);
  }
  /// @}

 private:
  /// Offsets in floats from the first weight, and the sizes the header implies.
  struct Layout {
    std::int64_t vocab_size = 0;
    std::int64_t token_embedding = 0, rms_att = 0, wq = 0, wk = 0, wv = 0, wo = 0, rms_ffn = 0,
                 w1 = 0, w2 = 0, w3 = 0, rms_final = 0, wcls = 0;
    std::uint64_t file_bytes = 0;
  };

  Llama2cCheckpoint() = default;

  static Llama2cHeader parse_header(const unsigned char* raw) {
    Llama2cHeader header;
    std::int32_t* fields[] = {&header.dim,     &header.hidden_dim, &header.n_layers,
                              &header.n_heads, &header.n_kv_heads, &header.vocab_size,
                              &header.max_seq_len};
    for (std::size_t i = 0; i < 7; ++i) *fields[i] = detail::llama2c::load_i32_le(raw + 4 * i);
    return header;
  }

  Layout validate(const std::string& where, std::uint64_t file_bytes) const {
    const Llama2cHeader& h = header_;
    const auto positive = [&](const char* field, std::int32_t value) {
      detail::require<format_error>(value > 0, where, ": header field ", field,
                                    " must be > 0, got ", value);
    };
    positive("dim", h.dim);
    positive("hidden_dim", h.hidden_dim);
    positive("n_layers", h.n_layers);
    positive("n_heads", h.n_heads);
    positive("n_kv_heads", h.n_kv_heads);
    detail::require<format_error>(h.vocab_size != 0, where,
                                  ": header field vocab_size must be != 0, got 0");
    positive("max_seq_len", h.max_seq_len);
    detail::require<format_error>(h.dim % h.n_heads == 0, where, ": header field n_heads (",
                                  h.n_heads, ") must divide dim (", h.dim, ")");
    detail::require<format_error>(h.n_heads % h.n_kv_heads == 0, where,
                                  ": header field n_kv_heads (", h.n_kv_heads,
                                  ") must divide n_heads (", h.n_heads, ")");
    const std::int64_t head_dim = h.dim / h.n_heads;
    detail::require<format_error>(head_dim % 2 == 0, where, ": head_dim = dim / n_heads = ",
                                  head_dim, " must be even for RoPE (dim ", h.dim, ", n_heads ",
                                  h.n_heads, ")");

    Layout layout;
    // In 64 bits, so -INT32_MIN does not overflow.
    layout.vocab_size = h.vocab_size < 0 ? -static_cast<std::int64_t>(h.vocab_size) : h.vocab_size;
    detail::llama2c::ElementCounter count(where);
    const std::int64_t dim = h.dim, layers = h.n_layers;
    const std::int64_t q_size = head_dim * h.n_heads;
    const std::int64_t kv_size = head_dim * h.n_kv_heads;
    const auto per_layers = [&](const char* field, std::int64_t a, std::int64_t b) {
      return count.product(field, layers, count.product(field, a, b));
    };
    layout.token_embedding =
        count.take("token_embedding", count.product("token_embedding", layout.vocab_size, dim));
    layout.rms_att = count.take("rms_att", per_layers("rms_att", 1, dim));
    layout.wq = count.take("wq", per_layers("wq", q_size, dim));
    layout.wk = count.take("wk", per_layers("wk", kv_size, dim));
    layout.wv = count.take("wv", per_layers("wv", kv_size, dim));
    layout.wo = count.take("wo", per_layers("wo", dim, q_size));
    layout.rms_ffn = count.take("rms_ffn", per_layers("rms_ffn", 1, dim));
    layout.w1 = count.take("w1", per_layers("w1", h.hidden_dim, dim));
    layout.w2 = count.take("w2", per_layers("w2", dim, h.hidden_dim));
    layout.w3 = count.take("w3", per_layers("w3", h.hidden_dim, dim));
    layout.rms_final = count.take("rms_final", dim);
    const std::int64_t freq_size = count.product("freq_cis", h.max_seq_len, head_dim / 2);
    count.take("freq_cis_real", freq_size);
    count.take("freq_cis_imag", freq_size);
    layout.wcls = layout.token_embedding;
    if (h.vocab_size < 0)
      layout.wcls = count.take("wcls", count.product("wcls", layout.vocab_size, dim));
    const std::int64_t weight_bytes = count.product("the weights", count.total(), 4);
    detail::require<format_error>(
        weight_bytes <= std::numeric_limits<std::int64_t>::max() -
                            static_cast<std::int64_t>(detail::llama2c::header_bytes),
        where, ": the size of the weights overflows 64 bits for the header's shapes");
    const auto expected =
        static_cast<std::uint64_t>(weight_bytes) + detail::llama2c::header_bytes;
    detail::require<format_error>(
        file_bytes == expected, where, ": file size ", file_bytes, " bytes, expected ", expected,
        " for the header's shapes (dim ", h.dim, ", hidden_dim ", h.hidden_dim, ", n_layers ",
        h.n_layers, ", n_heads ", h.n_heads, ", n_kv_heads ", h.n_kv_heads, ", vocab_size ",
        h.vocab_size, ", max_seq_len ", h.max_seq_len, "): the file is too ",
        file_bytes < expected ? "short" : "long");
    detail::require<format_error>(expected <= std::numeric_limits<std::size_t>::max(), where,
                                  ": file size ", expected, " bytes does not fit in memory");
    layout.file_bytes = expected;
    return layout;
  }

  index_t q_dim() const { return static_cast<index_t>(header_.dim / header_.n_heads) * header_.n_heads; }
  index_t kv_dim() const {
    return static_cast<index_t>(header_.dim / header_.n_heads) * header_.n_kv_heads;
  }
  index_t ffn_size() const { return static_cast<index_t>(header_.hidden_dim) * header_.dim; }

  index_t layer_offset(std::int64_t base, index_t layer, index_t per_layer) const {
    detail::require<range_error>(layer >= 0 && layer < header_.n_layers, "llama2.c checkpoint '",
                                 path_, "': layer ", layer, " is not in [0, n_layers = ",
                                 header_.n_layers, ")");
    return base + layer * per_layer;
  }
  Tensor<float, 2> matrix(std::int64_t offset, index_t rows, index_t cols) const {
    return Tensor<float, 2>::borrow(TensorView<float, 2>(weights_ + offset, {rows, cols}),
                                    storage_);
  }
  Tensor<float, 1> vector(std::int64_t offset, index_t size) const {
    return Tensor<float, 1>::borrow(TensorView<float, 1>(weights_ + offset, {size}), storage_);
  }

  std::string path_;
  Llama2cHeader header_;
  Layout layout_;
  std::shared_ptr<const void> storage_;
  float* weights_ = nullptr;
};

}  // namespace llamablocks
