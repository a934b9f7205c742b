// GGUF (ggml's model file format, versions 2 and 3) reader and the LLaMA ModelConfig it implies.
//
// Layout (little-endian):
//   header        "GGUF", uint32 version, uint64 tensor_count, uint64 metadata_kv_count
//   metadata      metadata_kv_count x { string key, uint32 value_type, value }
//   tensor infos  tensor_count x { string name, uint32 n_dims (<= 4), uint64 ne[n_dims],
//                                  uint32 ggml_type, uint64 offset }
//   padding       up to a multiple of general.alignment (uint32, default 32)
//   tensor data   each tensor at data_start + offset (offset a multiple of the alignment)
// A string is { uint64 length, bytes }; an array is { uint32 element_type, uint64 count, values }.
//
// Shapes: GGUF lists ne[] innermost first (ne[0] is the length of a row), llamablocks lists shapes
// outermost first, so a ggml matrix with ne = {cols, rows} is our [rows, cols]: a Linear weight
// [out_features, in_features] has ne = {in_features, out_features}.
//
// The whole file is read into one 64-byte aligned buffer (anonymous memory decodes faster than a
// file-backed mapping); F32 tensors are borrowed from it in place, other types are dequantized.
// Every count, length and offset is checked against the file size before it is used, so a
// truncated or hostile file throws format_error naming the file, the field and the value.
#pragma once

#include "llamablocks/core/config.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/io/dequantize.hpp"
#include "llamablocks/io/format_error.hpp"
#include "llamablocks/io/little_endian.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llamablocks::io {

/// Type tags of GGUF metadata values.
enum class GgufType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

inline const char* to_string(GgufType type) {
  switch (type) {
    case GgufType::uint8: return "uint8";
    case GgufType::int8: return "int8";
    case GgufType::uint16: return "uint16";
    case GgufType::int16: return "int16";
    case GgufType::uint32: return "uint32";
    case GgufType::int32: return "int32";
    case GgufType::float32: return "float32";
    case GgufType::boolean: return "bool";
    case GgufType::string: return "string";
    case GgufType::array: return "array";
    case GgufType::uint64: return "uint64";
    case GgufType::int64: return "int64";
    case GgufType::float64: return "float64";
  }
  return "(invalid)";
}

}  // namespace llamablocks::io

namespace llamablocks::detail {

/// The GGUF type tag of a C++ type usable with GgufValue::as<T>().
template <class T>
struct gguf_type_of;
template <> struct gguf_type_of<std::uint8_t> { static constexpr auto value = io::GgufType::uint8; };
template <> struct gguf_type_of<std::int8_t> { static constexpr auto value = io::GgufType::int8; };
template <> struct gguf_type_of<std::uint16_t> { static constexpr auto value = io::GgufType::uint16; };
template <> struct gguf_type_of<std::int16_t> { static constexpr auto value = io::GgufType::int16; };
template <> struct gguf_type_of<std::uint32_t> { static constexpr auto value = io::GgufType::uint32; };
template <> struct gguf_type_of<std::int32_t> { static constexpr auto value = io::GgufType::int32; };
template <> struct gguf_type_of<std::uint64_t> { static constexpr auto value = io::GgufType::uint64; };
template <> struct gguf_type_of<std::int64_t> { static constexpr auto value = io::GgufType::int64; };
template <> struct gguf_type_of<float> { static constexpr auto value = io::GgufType::float32; };
template <> struct gguf_type_of<double> { static constexpr auto value = io::GgufType::float64; };
template <> struct gguf_type_of<bool> { static constexpr auto value = io::GgufType::boolean; };
template <> struct gguf_type_of<std::string> { static constexpr auto value = io::GgufType::string; };

/// Bytes of a fixed-size GGUF value, 0 for string and array.
inline std::uint64_t gguf_scalar_bytes(io::GgufType type) {
  switch (type) {
    case io::GgufType::uint8: case io::GgufType::int8: case io::GgufType::boolean: return 1;
    case io::GgufType::uint16: case io::GgufType::int16: return 2;
    case io::GgufType::uint32: case io::GgufType::int32: case io::GgufType::float32: return 4;
    case io::GgufType::uint64: case io::GgufType::int64: case io::GgufType::float64: return 8;
    case io::GgufType::string: case io::GgufType::array: return 0;
  }
  return 0;
}

inline bool gguf_type_valid(std::uint32_t type) { return type <= 12; }

/// Bounds-checked reading of the file buffer. Every read names its field in the error.
class GgufCursor {
 public:
  GgufCursor(const unsigned char* base, std::uint64_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}

  std::uint64_t position() const { return position_; }
  std::uint64_t remaining() const { return size_ - position_; }

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw format_error(concat("GGUF '", path_, "': ", field, ": ", problem));
  }

  /// Consumes `bytes` bytes and returns where they start.
  const unsigned char* take(std::uint64_t bytes, const std::string& field) {
    if (bytes > remaining())
      fail(field, concat("needs ", bytes, " bytes at offset ", position_, " but the file (",
                         size_, " bytes) has only ", remaining(), " left (truncated?)"));
    const unsigned char* start = base_ + position_;
    position_ += bytes;
    return start;
  }

  std::uint32_t u32(const std::string& field) { return load_le<std::uint32_t>(take(4, field)); }
  std::uint64_t u64(const std::string& field) { return load_le<std::uint64_t>(take(8, field)); }

  /// A GGUF string: uint64 length, then that many bytes (the length is checked first).
  std::string_view string(const std::string& field) {
    const std::uint64_t length = u64(field + " length");
    if (length > remaining())
      fail(field, concat("string length ", length, " exceeds the ", remaining(),
                         " bytes left in the file"));
    const unsigned char* start = take(length, field);
    return {reinterpret_cast<const char*>(start), static_cast<std::size_t>(length)};
  }

 private:
  const unsigned char* base_;
  std::uint64_t size_;
  std::uint64_t position_ = 0;
  const std::string& path_;
};

/// Deepest nesting of arrays accepted (arrays of arrays of ...); bounds recursion on hostile files.
constexpr int gguf_max_array_depth = 8;

/// Walks over one value of `type`, checking every length and count against the bytes left.
inline void gguf_skip_value(GgufCursor& cursor, io::GgufType type, const std::string& field,
                            int depth) {
  if (type == io::GgufType::string) {
    cursor.string(field);
    return;
  }
  if (type != io::GgufType::array) {
    cursor.take(gguf_scalar_bytes(type), field);
    return;
  }
  if (depth >= gguf_max_array_depth)
    cursor.fail(field, concat("arrays nested deeper than ", gguf_max_array_depth));
  const std::uint32_t raw_element = cursor.u32(field + " element type");
  if (!gguf_type_valid(raw_element))
    cursor.fail(field, concat("invalid array element type ", raw_element));
  const auto element = static_cast<io::GgufType>(raw_element);
  const std::uint64_t count = cursor.u64(field + " count");
  // Each element needs at least this many bytes (8 for a string's length, 12 for an array's
  // element type and count), so a count above remaining / minimum cannot be valid.
  const std::uint64_t minimum = element == io::GgufType::string  ? 8
                                : element == io::GgufType::array ? 12
                                                                 : gguf_scalar_bytes(element);
  if (count > cursor.remaining() / minimum)
    cursor.fail(field, concat("array count ", count, " of ", io::to_string(element),
                              " does not fit in the ", cursor.remaining(), " bytes left"));
  if (gguf_scalar_bytes(element) != 0) {
    cursor.take(count * minimum, field);  // count <= remaining / minimum: no overflow
    return;
  }
  for (std::uint64_t i = 0; i < count; ++i)
    gguf_skip_value(cursor, element, concat(field, '[', i, ']'), depth + 1);
}

/// Overflow-safe round-up of `value` to a multiple of `alignment` (a power of two); nullopt if it
/// would not fit in 64 bits.
inline std::optional<std::uint64_t> gguf_align_up(std::uint64_t value, std::uint64_t alignment) {
  const std::uint64_t rest = value % alignment;
  if (rest == 0) return value;
  if (value > UINT64_MAX - (alignment - rest)) return std::nullopt;
  return value + (alignment - rest);
}

}  // namespace llamablocks::detail

namespace llamablocks::io {

/// A metadata value inside a GgufFile's buffer (valid while the GgufFile lives). Its bytes were
/// validated when the file was opened, so reading them cannot run past the buffer.
class GgufValue {
 public:
  GgufValue() = default;

  GgufType type() const { return type_; }
  /// Element type of an array (the value's own type otherwise).
  GgufType element_type() const { return element_type_; }
  /// Number of elements of an array (1 for any other value).
  std::uint64_t size() const { return count_; }
  bool is_array() const { return type_ == GgufType::array; }

  /// The value as `T`, whose GGUF type must match exactly (uint32 is not read as int64, etc.).
  /// \tparam T std::uint8_t ... std::int64_t, float (float32), double (float64), bool, std::string.
  template <class T>
  T as() const {
    expect_type(detail::gguf_type_of<T>::value);
    return decode<T>(data_);
  }

  /// Any integer type read as int64 (a uint64 above INT64_MAX throws format_error).
  std::int64_t as_integer() const {
    switch (type_) {
      case GgufType::uint8: return as<std::uint8_t>();
      case GgufType::int8: return as<std::int8_t>();
      case GgufType::uint16: return as<std::uint16_t>();
      case GgufType::int16: return as<std::int16_t>();
      case GgufType::uint32: return as<std::uint32_t>();
      case GgufType::int32: return as<std::int32_t>();
      case GgufType::int64: return as<std::int64_t>();
      case GgufType::uint64: {
        const std::uint64_t value = as<std::uint64_t>();
        if (value > static_cast<std::uint64_t>(INT64_MAX))
          throw format_error(detail::concat(where(), " = ", value, " does not fit in int64"));
        return static_cast<std::int64_t>(value);
      }
      default:
        throw format_error(detail::concat(where(), " has type ", to_string(type_),
                                          ", expected an integer"));
    }
  }

  /// float32 or float64 read as double.
  double as_real() const {
    if (type_ == GgufType::float32) return static_cast<double>(as<float>());
    if (type_ == GgufType::float64) return as<double>();
    throw format_error(
        detail::concat(where(), " has type ", to_string(type_), ", expected float32 or float64"));
  }

  /// The elements of an array, in order (each one a GgufValue; nested arrays stay arrays).
  std::vector<GgufValue> elements() const {
    expect_type(GgufType::array);
    std::vector<GgufValue> result;
    result.reserve(static_cast<std::size_t>(count_));
    const unsigned char* cursor = data_;
    for (std::uint64_t i = 0; i < count_; ++i) {
      GgufValue element = at(element_type_, cursor, i);
      cursor += element.bytes_;
      result.push_back(element);
    }
    return result;
  }

  /// An array whose elements have GGUF type `T` exactly, as a vector.
  template <class T>
  std::vector<T> as_array() const {
    expect_type(GgufType::array);
    if (element_type_ != detail::gguf_type_of<T>::value)
      throw format_error(detail::concat(where(), " is an array of ", to_string(element_type_),
                                        ", expected an array of ",
                                        to_string(detail::gguf_type_of<T>::value)));
    std::vector<T> result;
    result.reserve(static_cast<std::size_t>(count_));
    if constexpr (std::is_same_v<T, std::string>) {
      for (const GgufValue& element : elements()) result.push_back(element.as<std::string>());
    } else {
      for (std::uint64_t i = 0; i < count_; ++i) result.push_back(decode<T>(data_ + i * sizeof(T)));
    }
    return result;
  }

  /// Describes this value for error messages: "GGUF '<file>': metadata key '<key>'[<index>]".
  std::string where() const {
    std::string text = context_ ? *context_ : std::string("GGUF value");
    if (index_ >= 0) text += detail::concat('[', index_, ']');
    return text;
  }

 private:
  friend class GgufFile;

  /// Builds the value of `type` starting at `data` (already validated).
  GgufValue at(GgufType type, const unsigned char* data, std::uint64_t index) const {
    GgufValue value;
    value.type_ = type;
    value.element_type_ = type;
    value.data_ = data;
    value.context_ = context_;
    value.index_ = static_cast<std::int64_t>(index);
    value.measure();
    return value;
  }

  /// Fills element_type_, count_ and bytes_ from the bytes at data_ (already validated).
  void measure() {
    if (type_ == GgufType::string) {
      bytes_ = 8 + detail::load_le<std::uint64_t>(data_);
    } else if (type_ == GgufType::array) {
      element_type_ = static_cast<GgufType>(detail::load_le<std::uint32_t>(data_));
      count_ = detail::load_le<std::uint64_t>(data_ + 4);
      data_ += 12;
      const std::uint64_t fixed = detail::gguf_scalar_bytes(element_type_);
      std::uint64_t payload = fixed * count_;
      if (fixed == 0) {
        payload = 0;
        GgufValue element;
        element.type_ = element_type_;
        for (std::uint64_t i = 0; i < count_; ++i) {
          element.data_ = data_ + payload;
          element.measure();
          payload += element.bytes_;
        }
      }
      bytes_ = 12 + payload;
    } else {
      bytes_ = detail::gguf_scalar_bytes(type_);
    }
  }

  void expect_type(GgufType expected) const {
    if (type_ != expected)
      throw format_error(detail::concat(where(), " has type ", to_string(type_), ", expected ",
                                        to_string(expected)));
  }

  template <class T>
  T decode(const unsigned char* bytes) const {
    if constexpr (std::is_same_v<T, std::string>) {
      const auto length = detail::load_le<std::uint64_t>(bytes);
      return std::string(reinterpret_cast<const char*>(bytes + 8), static_cast<std::size_t>(length));
    } else if constexpr (std::is_same_v<T, bool>) {
      const unsigned char byte = bytes[0];
      if (byte > 1)
        throw format_error(detail::concat(where(), ": bool must be 0 or 1, got ", int{byte}));
      return byte == 1;
    } else if constexpr (std::is_floating_point_v<T>) {
      using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
      const Bits bits = detail::load_le<Bits>(bytes);
      T value;
      std::memcpy(&value, &bits, sizeof value);
      return value;
    } else {
      using Bits = std::make_unsigned_t<T>;
      const Bits bits = detail::load_le<Bits>(bytes);
      T value;
      std::memcpy(&value, &bits, sizeof value);  // two's complement reinterpretation
      return value;
    }
  }

  GgufType type_ = GgufType::uint8;
  GgufType element_type_ = GgufType::uint8;
  std::uint64_t count_ = 1;
  const unsigned char* data_ = nullptr;  // the value; for an array, its first element
  std::uint64_t bytes_ = 0;              // encoded size including an array's 12-byte header
  const std::string* context_ = nullptr;
  std::int64_t index_ = -1;
};

/// One tensor's entry in the GGUF tensor-info table.
struct GgufTensorInfo {
  std::string name;
  std::uint32_t n_dims = 0;
  /// Extents innermost first, as GGUF stores them (ne[0] is the row length); unused ones are 1.
  std::array<std::int64_t, 4> ne{1, 1, 1, 1};
  std::uint32_t type = 0;       ///< ggml type id (see GgmlType)
  const char* type_name = "";   ///< "F32", "Q4_1", ...
  std::uint64_t offset = 0;     ///< from the start of the data section
  std::uint64_t bytes = 0;      ///< size of the data
  std::int64_t element_count = 0;

  /// Extents outermost first (llamablocks order): ne = {576, 192} gives [192, 576].
  std::vector<index_t> shape() const {
    std::vector<index_t> result;
    for (std::uint32_t i = n_dims; i-- > 0;) result.push_back(ne[i]);
    return result;
  }
};

/// A GGUF file read completely into memory.
///
/// \code
///   auto file = io::GgufFile::open("model.gguf");
///   auto layers = file.get<std::uint32_t>("llama.block_count");
///   auto tokens = file.get_array<std::string>("tokenizer.ggml.tokens");
///   Tensor<float, 2> wq = file.load_f32<2>("blk.0.attn_q.weight", {dim, dim});
/// \endcode
class GgufFile {
 public:
  /// Reads and validates `path`; throws format_error naming the file, the field and its value.
  static GgufFile open(const std::string& path) {
    GgufFile file;
    file.path_ = path;
    file.read_whole_file();
    file.parse();
    return file;
  }

  const std::string& path() const { return path_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t file_size() const { return size_; }
  std::uint64_t alignment() const { return alignment_; }
  /// Byte offset of the (aligned) data section in the file.
  std::uint64_t data_offset() const { return data_offset_; }

  /// Metadata keys in file order.
  std::vector<std::string> keys() const {
    std::vector<std::string> result;
    result.reserve(entries_.size());
    for (const Entry& entry : entries_) result.push_back(entry.key);
    return result;
  }
  bool has(const std::string& key) const { return index_.count(key) != 0; }

  /// The value of `key`, or nullptr when absent.
  const GgufValue* find(const std::string& key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].value;
  }
  /// The value of `key`; throws format_error when absent.
  const GgufValue& value(const std::string& key) const {
    const GgufValue* found = find(key);
    if (!found)
      throw format_error(detail::concat("GGUF '", path_, "': metadata key '", key, "' is missing"));
    return *found;
  }

  /// Typed lookup; the stored type must be exactly `T` (see GgufValue::as).
  template <class T>
  T get(const std::string& key) const {
    return value(key).as<T>();
  }
  /// Typed lookup, nullopt when the key is absent (a present key of another type still throws).
  template <class T>
  std::optional<T> get_optional(const std::string& key) const {
    const GgufValue* found = find(key);
    if (!found) return std::nullopt;
    return found->as<T>();
  }
  /// Any integer type as int64.
  std::int64_t get_integer(const std::string& key) const { return value(key).as_integer(); }
  std::optional<std::int64_t> get_optional_integer(const std::string& key) const {
    const GgufValue* found = find(key);
    if (!found) return std::nullopt;
    return found->as_integer();
  }
  /// float32 or float64 as double.
  double get_real(const std::string& key) const { return value(key).as_real(); }
  std::optional<double> get_optional_real(const std::string& key) const {
    const GgufValue* found = find(key);
    if (!found) return std::nullopt;
    return found->as_real();
  }
  /// An array of exactly `T`: tokens and merges (std::string), scores (float), token_type
  /// (std::int32_t).
  template <class T>
  std::vector<T> get_array(const std::string& key) const {
    return value(key).as_array<T>();
  }

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  const GgufTensorInfo& tensor(const std::string& name) const {
    const GgufTensorInfo* found = find_tensor(name);
    if (!found)
      throw format_error(detail::concat("GGUF '", path_, "': no tensor named '", name, "'"));
    return *found;
  }
  /// The raw bytes of a tensor inside the file buffer (`info.bytes` of them).
  const unsigned char* tensor_data(const GgufTensorInfo& info) const {
    return buffer_.get() + data_offset_ + info.offset;
  }
  /// Keeps the file buffer alive (what borrowed tensors hold).
  std::shared_ptr<const void> storage() const { return buffer_; }

  /// Tensor `name` as a [rows, cols] matrix kept as stored, when its type is one the cpu kernels
  /// read packed (F32, F16, BF16, Q8_0: see core/weight_type.hpp), else nullopt (a type that must
  /// be dequantized). Its bytes stay in the file buffer (storage()).
  /// \throws shape_error when the tensor's shape is not [rows, cols].
  std::optional<PackedMatrixView> packed_matrix(const std::string& name, index_t rows,
                                                index_t cols) const {
    const GgufTensorInfo& info = tensor(name);
    if (info.n_dims < 1 || info.ne[0] != cols || info.ne[1] != rows || info.ne[2] != 1 ||
        info.ne[3] != 1)
      throw shape_error(detail::concat("GGUF '", path_, "': tensor '", name, "' has shape ",
                                       detail::format_extents(info.shape()), " (", info.type_name,
                                       "), expected [", rows, ", ", cols, "]"));
    WeightType type;
    switch (static_cast<GgmlType>(info.type)) {
      case GgmlType::f32: type = WeightType::f32; break;
      case GgmlType::f16: type = WeightType::f16; break;
      case GgmlType::bf16: type = WeightType::bf16; break;
      case GgmlType::q8_0: type = WeightType::q8_0; break;
      default: return std::nullopt;
    }
    if (!detail::host_is_little_endian()) return std::nullopt;
    return PackedMatrixView{type, tensor_data(info), rows, cols, weight_row_bytes(type, cols)};
  }

  /// The tensor `name` as float32 of shape `expected` (outermost first).
  ///
  /// F32 data is borrowed in place (no copy; the tensor keeps the file buffer alive and writes
  /// through it change the buffer); F16, BF16, Q8_0, Q4_0 and Q4_1 are dequantized into a new
  /// tensor. GGUF's ne[] is reversed into our order; a GGUF tensor with fewer dimensions than
  /// `Rank` matches when the missing outer extents of `expected` are 1, and one with more when its
  /// extra outer extents are 1. A mismatch throws shape_error naming the tensor and both shapes.
  template <int Rank>
  Tensor<float, Rank> load_f32(const std::string& name, const Shape<Rank>& expected) const {
    static_assert(Rank >= 1 && Rank <= 4, "GgufFile::load_f32: Rank must be 1..4");
    const GgufTensorInfo& info = tensor(name);
    Shape<Rank> actual{};
    bool fits = true;
    for (int i = 0; i < 4; ++i) {
      const std::int64_t extent = info.ne[static_cast<std::size_t>(i)];
      if (i < Rank)
        actual[static_cast<std::size_t>(Rank - 1 - i)] = extent;
      else if (extent != 1)
        fits = false;
    }
    if (!fits || actual != expected)
      throw shape_error(detail::concat("GGUF '", path_, "': tensor '", name, "' has shape ",
                                       detail::format_extents(info.shape()), " (", info.type_name,
                                       "), expected ", detail::format_shape(expected)));
    const unsigned char* data = tensor_data(info);
    const auto type = static_cast<GgmlType>(info.type);
    if (type == GgmlType::f32 && detail::host_is_little_endian() &&
        reinterpret_cast<std::uintptr_t>(data) % alignof(float) == 0) {
      // The buffer is never written by the reader; the borrowed tensor is mutable by design of
      // Tensor, so constness is the caller's contract.
      auto* floats = reinterpret_cast<float*>(const_cast<unsigned char*>(data));
      return Tensor<float, Rank>::borrow(TensorView<float, Rank>(floats, actual), buffer_);
    }
    const auto traits = ggml_type_traits(info.type);
    if (!traits || !traits->dequantizable)
      throw format_error(detail::concat(
          "GGUF '", path_, "': tensor '", name, "' has type ", info.type_name,
          ", which load_f32 cannot convert (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"));
    Tensor<float, Rank> result(actual);
    dequantize_row(type, data, result.data(), info.element_count);
    return result;
  }

 private:
  struct Entry {
    std::string key;
    std::unique_ptr<std::string> context;  // stable address for GgufValue::where()
    GgufValue value;
  };

  [[noreturn]] void fail(const std::string& problem) const {
    throw format_error(detail::concat("GGUF '", path_, "': ", problem));
  }

  void read_whole_file() {
    std::FILE* stream = std::fopen(path_.c_str(), "rb");
    if (!stream) fail(detail::concat("cannot open: ", std::strerror(errno)));
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(stream, &std::fclose);
    if (std::fseek(stream, 0, SEEK_END) != 0) fail("cannot seek to the end");
    const long end = std::ftell(stream);
    if (end < 0 || std::fseek(stream, 0, SEEK_SET) != 0) fail("cannot determine the file size");
    size_ = static_cast<std::uint64_t>(end);
    void* raw = detail::allocator<cpu>::allocate(static_cast<std::size_t>(size_));
    buffer_ = std::shared_ptr<unsigned char>(static_cast<unsigned char*>(raw), [](unsigned char* p) {
      detail::allocator<cpu>::deallocate(p);
    });
    if (size_ != 0 && std::fread(raw, 1, static_cast<std::size_t>(size_), stream) != size_)
      fail(detail::concat("read fewer than its ", size_, " bytes"));
  }

  void parse() {
    detail::GgufCursor cursor(buffer_.get(), size_, path_);
    const unsigned char* magic = cursor.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0)
      cursor.fail("magic", detail::concat("expected \"GGUF\", got bytes 0x", hex(magic[0]),
                                          " 0x", hex(magic[1]), " 0x", hex(magic[2]), " 0x",
                                          hex(magic[3])));
    version_ = cursor.u32("version");
    if (version_ != 2 && version_ != 3)
      cursor.fail("version", detail::concat("unsupported version ", version_,
                                            " (this reader supports 2 and 3; a byte-swapped value "
                                            "means a big-endian file)"));
    const std::uint64_t tensor_count = cursor.u64("tensor_count");
    const std::uint64_t kv_count = cursor.u64("metadata_kv_count");
    // A key/value pair needs at least 8 (key length) + 4 (type) + 1 bytes, a tensor info at least
    // 8 + 4 + 8 + 4 + 8 bytes: larger counts cannot fit in what is left.
    if (kv_count > cursor.remaining() / 13)
      cursor.fail("metadata_kv_count", detail::concat(kv_count, " entries cannot fit in the ",
                                                      cursor.remaining(), " bytes left"));
    entries_.reserve(static_cast<std::size_t>(kv_count));
    for (std::uint64_t i = 0; i < kv_count; ++i) parse_entry(cursor, i);

    alignment_ = 32;
    if (const GgufValue* align = find("general.alignment")) {
      const auto value = align->as<std::uint32_t>();
      if (value == 0 || (value & (value - 1)) != 0)
        cursor.fail("general.alignment",
                    detail::concat("must be a power of two, got ", value));
      alignment_ = value;
    }

    if (tensor_count > cursor.remaining() / 32)
      cursor.fail("tensor_count", detail::concat(tensor_count, " tensors cannot fit in the ",
                                                 cursor.remaining(), " bytes left"));
    tensors_.reserve(static_cast<std::size_t>(tensor_count));
    for (std::uint64_t i = 0; i < tensor_count; ++i) parse_tensor_info(cursor, i);

    const auto data_offset = detail::gguf_align_up(cursor.position(), alignment_);
    if (!data_offset) cursor.fail("data section", "aligned start overflows");
    data_offset_ = *data_offset;
    if (!tensors_.empty() && data_offset_ > size_)
      cursor.fail("data section", detail::concat("starts at ", data_offset_,
                                                 ", past the end of the file (", size_, " bytes)"));
    for (const GgufTensorInfo& info : tensors_) check_tensor_range(info);
  }

  static std::string hex(unsigned char byte) {
    const char* digits = "0123456789abcdef";
    return {digits[byte >> 4], digits[byte & 15]};
  }

  void parse_entry(detail::GgufCursor& cursor, std::uint64_t i) {
    const std::string field = detail::concat("metadata entry ", i);
    Entry entry;
    entry.key = std::string(cursor.string(field + " key"));
    const std::string value_field = detail::concat(field, " ('", entry.key, "')");
    if (index_.count(entry.key)) cursor.fail(value_field, "duplicate key");
    const std::uint32_t raw_type = cursor.u32(value_field + " value type");
    if (!detail::gguf_type_valid(raw_type))
      cursor.fail(value_field, detail::concat("invalid value type ", raw_type));
    const std::uint64_t start = cursor.position();
    detail::gguf_skip_value(cursor, static_cast<GgufType>(raw_type), value_field, 0);
    entry.context = std::make_unique<std::string>(
        detail::concat("GGUF '", path_, "': metadata key '", entry.key, "'"));
    entry.value.type_ = static_cast<GgufType>(raw_type);
    entry.value.element_type_ = entry.value.type_;
    entry.value.data_ = buffer_.get() + start;
    entry.value.context_ = entry.context.get();
    entry.value.measure();
    index_.emplace(entry.key, entries_.size());
    entries_.push_back(std::move(entry));
  }

  void parse_tensor_info(detail::GgufCursor& cursor, std::uint64_t i) {
    const std::string field = detail::concat("tensor ", i);
    GgufTensorInfo info;
    info.name = std::string(cursor.string(field + " name"));
    const std::string named = detail::concat(field, " ('", info.name, "')");
    if (tensor_index_.count(info.name)) cursor.fail(named, "duplicate tensor name");
    info.n_dims = cursor.u32(named + " n_dims");
    if (info.n_dims < 1 || info.n_dims > 4)
      cursor.fail(named, detail::concat("n_dims must be in [1, 4], got ", info.n_dims));
    std::int64_t count = 1;
    for (std::uint32_t d = 0; d < info.n_dims; ++d) {
      const std::string dim_field = detail::concat(named, " ne[", d, "]");
      const std::uint64_t extent = cursor.u64(dim_field);
      if (extent > static_cast<std::uint64_t>(INT64_MAX))
        cursor.fail(dim_field, detail::concat("extent ", extent, " exceeds INT64_MAX (negative as int64: ",
                                              static_cast<std::int64_t>(extent), ")"));
      const auto value = static_cast<std::int64_t>(extent);
      if (value != 0 && count > INT64_MAX / value)
        cursor.fail(dim_field, detail::concat("extent ", value, " makes the element count overflow"));
      count *= value;
      info.ne[d] = value;
    }
    info.element_count = count;
    info.type = cursor.u32(named + " type");
    const auto traits = ggml_type_traits(info.type);
    if (!traits) cursor.fail(named + " type", detail::concat("unknown ggml type id ", info.type));
    info.type_name = traits->name;
    if (info.ne[0] % traits->block_size != 0)
      cursor.fail(named, detail::concat("row length ne[0] = ", info.ne[0], " is not a multiple of the ",
                                        traits->name, " block size ", traits->block_size));
    // count / block_size blocks of block_bytes; count <= INT64_MAX and block_bytes <= 292, so
    // check the product against UINT64_MAX before forming it.
    const auto blocks = static_cast<std::uint64_t>(count / traits->block_size);
    const auto block_bytes = static_cast<std::uint64_t>(traits->block_bytes);
    if (blocks > UINT64_MAX / block_bytes)
      cursor.fail(named, detail::concat("data size of ", count, " ", traits->name,
                                        " elements overflows"));
    info.bytes = blocks * block_bytes;
    info.offset = cursor.u64(named + " offset");
    tensor_index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }

  void check_tensor_range(const GgufTensorInfo& info) const {
    const std::string named = detail::concat("tensor '", info.name, "'");
    if (info.offset % alignment_ != 0)
      fail(detail::concat(named, ": offset ", info.offset, " is not a multiple of the alignment ",
                          alignment_));
    // data_offset_ + offset + bytes <= size_, without overflow.
    const std::uint64_t available = data_offset_ <= size_ ? size_ - data_offset_ : 0;
    if (info.offset > available || info.bytes > available - info.offset)
      fail(detail::concat(named, ": offset ", info.offset, " + ", info.bytes,
                          " bytes of data runs past the end of the file (data section starts at ",
                          data_offset_, ", file size ", size_, ")"));
  }

  std::string path_;
  std::shared_ptr<unsigned char> buffer_;
  std::uint64_t size_ = 0;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;
};

}  // namespace llamablocks::io

namespace llamablocks::detail {

/// LLaMA-3.1 ("llama3") RoPE scaling from the per-frequency divisors that llama.cpp's converter
/// stores as rope_freqs.weight instead of metadata keys. The converter computes them from factor,
/// low_freq_factor, high_freq_factor and original_max_position_embeddings; those are recovered by
/// assuming Meta's published low 1, high 4, original context 8192 (every LLaMA-3.1/3.2 release)
/// with factor = the largest divisor, and checking that they reproduce every stored divisor.
inline RopeScaling gguf_llama3_scaling(const io::GgufFile& file, const io::GgufTensorInfo& info,
                                       std::int64_t head_dim, double rope_theta) {
  const auto factors = file.load_f32<1>(info.name, {head_dim / 2});
  double factor = 1.0;
  for (index_t i = 0; i < factors.size(); ++i)
    factor = std::max(factor, static_cast<double>(factors.data()[i]));
  const RopeScaling scaling = RopeScaling::llama3(factor);
  const double pi = 3.14159265358979323846;
  const double low_wavelen = static_cast<double>(scaling.original_max_position_embeddings) /
                             scaling.low_freq_factor;
  const double high_wavelen = static_cast<double>(scaling.original_max_position_embeddings) /
                              scaling.high_freq_factor;
  for (index_t i = 0; i < factors.size(); ++i) {
    const double freq =
        1.0 / std::pow(rope_theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
    const double wavelen = 2 * pi / freq;
    double expected = 1.0;
    if (wavelen > low_wavelen) {
      expected = factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth =
          (static_cast<double>(scaling.original_max_position_embeddings) / wavelen -
           scaling.low_freq_factor) /
          (scaling.high_freq_factor - scaling.low_freq_factor);
      expected = 1.0 / ((1 - smooth) / factor + smooth);
    }
    const double stored = static_cast<double>(factors.data()[i]);
    if (!(std::fabs(stored - expected) <= 1e-3 * expected))
      throw format_error(concat(
          "GGUF '", file.path(), "': tensor '", info.name, "'[", i, "] = ", stored,
          " does not match llama3 RoPE scaling (factor ", factor,
          ", low_freq_factor 1, high_freq_factor 4, original context 8192), which expects ",
          expected, "; other per-frequency factors are not supported"));
  }
  return scaling;
}

/// Refuses a ModelConfig that contradicts the shapes of the llama.cpp tensors present in `file`
/// (a missing tensor is the loader's business): token_embd / output [vocab_size, dim],
/// output_norm [dim], blk.0.attn_q [n_heads * head_dim, dim], blk.0.attn_k / attn_v
/// [n_kv_heads * head_dim, dim], blk.0.ffn_gate / ffn_up [ffn_hidden_dim, dim], and
/// blk.<n_layers - 1>.attn_norm present when blk.0.attn_norm is, blk.<n_layers>.attn_norm absent.
/// Shapes are [outer, inner], i.e. ne = {inner, outer}. Runs before anything is allocated for
/// the config, so a header claiming a huge model is refused by its small tensors.
inline void gguf_check_llama_tensors(const io::GgufFile& file, const ModelConfig& config) {
  const auto refuse = [&](const std::string& problem) {
    throw format_error(concat("GGUF '", file.path(), "': ", problem));
  };
  // rows * head_dim without overflow: both are positive after ModelConfig::validate().
  const auto heads_width = [&](std::int64_t heads, const char* field) {
    if (config.head_dim > INT64_MAX / heads)
      refuse(concat(field, " ", heads, " * head_dim ", config.head_dim, " overflows int64"));
    return heads * config.head_dim;
  };
  const std::int64_t q_rows = heads_width(config.n_heads, "n_heads");
  const std::int64_t kv_rows = heads_width(config.n_kv_heads, "n_kv_heads");
  struct Expected {
    const char* name;
    std::int64_t rows;  // 0: a vector of `cols`
    const char* rows_text;
    std::int64_t cols;
  };
  const Expected expected[] = {
      {"token_embd.weight", config.vocab_size, "vocab_size", config.dim},
      {"output.weight", config.vocab_size, "vocab_size", config.dim},
      {"output_norm.weight", 0, "", config.dim},
      {"blk.0.attn_norm.weight", 0, "", config.dim},
      {"blk.0.attn_q.weight", q_rows, "n_heads * head_dim", config.dim},
      {"blk.0.attn_k.weight", kv_rows, "n_kv_heads * head_dim", config.dim},
      {"blk.0.attn_v.weight", kv_rows, "n_kv_heads * head_dim", config.dim},
      {"blk.0.ffn_gate.weight", config.ffn_hidden_dim, "ffn_hidden_dim", config.dim},
      {"blk.0.ffn_up.weight", config.ffn_hidden_dim, "ffn_hidden_dim", config.dim},
  };
  for (const Expected& e : expected) {
    const io::GgufTensorInfo* info = file.find_tensor(e.name);
    if (!info) continue;
    const bool matches = e.rows == 0
                             ? info->n_dims == 1 && info->ne[0] == e.cols
                             : info->n_dims == 2 && info->ne[0] == e.cols && info->ne[1] == e.rows;
    if (!matches) {
      std::string shape = "[";
      for (std::uint32_t d = info->n_dims; d-- > 0;)
        shape += concat(info->ne[d], d ? ", " : "]");
      refuse(e.rows == 0 ? concat("tensor '", e.name, "' has shape ", shape,
                                  ", the metadata gives [dim = ", config.dim, "]")
                         : concat("tensor '", e.name, "' has shape ", shape,
                                  ", the metadata gives [", e.rows_text, " = ", e.rows,
                                  ", dim = ", config.dim, "]"));
    }
  }
  if (file.find_tensor("blk.0.attn_norm.weight")) {
    const std::string last = concat("blk.", config.n_layers - 1, ".attn_norm.weight");
    if (!file.find_tensor(last))
      refuse(concat("block_count = ", config.n_layers, " but there is no tensor '", last, "'"));
    const std::string extra = concat("blk.", config.n_layers, ".attn_norm.weight");
    if (file.find_tensor(extra))
      refuse(concat("block_count = ", config.n_layers, " but there is a tensor '", extra, "'"));
  }
}

}  // namespace llamablocks::detail

namespace llamablocks::io {

/// The ModelConfig of a GGUF LLaMA model, from the `llama.` metadata keys.
///
/// Required: general.architecture == "llama", llama.context_length (max_seq_len),
/// llama.embedding_length (dim), llama.block_count (n_layers), llama.feed_forward_length
/// (ffn_hidden_dim), llama.attention.head_count (n_heads),
/// llama.attention.layer_norm_rms_epsilon (norm_eps), and the vocabulary:
/// tokenizer.ggml.tokens (its length), else llama.vocab_size.
/// Defaults: attention.head_count_kv = head_count, rope.freq_base = 10000,
/// head_dim = attention.key_length, else rope.dimension_count, else dim / n_heads (partial
/// rotary, rope.dimension_count != head_dim, is refused).
/// RoPE scaling: rope.scaling.type "none" / "linear" (with rope.scaling.factor); a
/// rope_freqs.weight tensor (LLaMA-3.1 converted by llama.cpp) becomes RopeScaling::llama3;
/// "yarn", "longrope" and others are refused by name.
/// rope_layout is interleaved: llama.cpp's converter permutes Hugging Face q/k rows back to
/// Meta's pairing (LlamaModel.permute), and llama.cpp rotates adjacent pairs for "llama".
/// The result is validated (config_error); malformed or missing keys throw format_error, and so do
/// head_count not dividing embedding_length (without key_length or rope.dimension_count) and a
/// config that contradicts the shapes of the llama tensors present (detail::gguf_check_llama_tensors).
inline ModelConfig config_from_gguf(const GgufFile& file) {
  const std::string arch = file.get<std::string>("general.architecture");
  if (arch != "llama")
    throw format_error(detail::concat("GGUF '", file.path(), "': general.architecture is '", arch,
                                      "', config_from_gguf supports only 'llama'"));
  const std::string p = arch + ".";
  ModelConfig config;
  config.max_seq_len = file.get_integer(p + "context_length");
  config.dim = file.get_integer(p + "embedding_length");
  config.n_layers = file.get_integer(p + "block_count");
  config.ffn_hidden_dim = file.get_integer(p + "feed_forward_length");
  config.n_heads = file.get_integer(p + "attention.head_count");
  config.n_kv_heads =
      file.get_optional_integer(p + "attention.head_count_kv").value_or(config.n_heads);
  config.norm_eps = file.get_real(p + "attention.layer_norm_rms_epsilon");
  config.rope_theta = file.get_optional_real(p + "rope.freq_base").value_or(10000.0);

  const auto rope_dims = file.get_optional_integer(p + "rope.dimension_count");
  const auto key_length = file.get_optional_integer(p + "attention.key_length");
  if (key_length) {
    config.head_dim = *key_length;
  } else if (rope_dims) {
    config.head_dim = *rope_dims;
  } else {
    if (config.n_heads > 0 && config.dim % config.n_heads != 0)
      throw format_error(detail::concat(
          "GGUF '", file.path(), "': ", p, "attention.head_count = ", config.n_heads,
          " does not divide ", p, "embedding_length = ", config.dim, ", and neither ", p,
          "attention.key_length nor ", p, "rope.dimension_count gives head_dim"));
    config.head_dim = config.n_heads > 0 ? config.dim / config.n_heads : 0;
  }
  if (rope_dims && *rope_dims != config.head_dim)
    throw format_error(detail::concat("GGUF '", file.path(), "': ", p, "rope.dimension_count = ",
                                      *rope_dims, " differs from head_dim ", config.head_dim,
                                      " (partial rotary embedding is not supported)"));

  if (file.has("tokenizer.ggml.tokens")) {
    config.vocab_size = static_cast<std::int64_t>(file.value("tokenizer.ggml.tokens").size());
    const auto declared = file.get_optional_integer(p + "vocab_size");
    if (declared && *declared != config.vocab_size)
      throw format_error(detail::concat("GGUF '", file.path(), "': ", p, "vocab_size = ", *declared,
                                        " differs from the ", config.vocab_size,
                                        " entries of tokenizer.ggml.tokens"));
  } else {
    config.vocab_size = file.get_integer(p + "vocab_size");
  }

  const std::string scaling_type =
      file.get_optional<std::string>(p + "rope.scaling.type").value_or("none");
  if (scaling_type == "linear") {
    config.rope_scaling = RopeScaling::linear(file.get_real(p + "rope.scaling.factor"));
  } else if (scaling_type != "none") {
    throw format_error(detail::concat("GGUF '", file.path(), "': ", p, "rope.scaling.type is '",
                                      scaling_type, "', supported: 'none', 'linear'"));
  }
  if (const GgufTensorInfo* freqs = file.find_tensor("rope_freqs.weight")) {
    if (config.rope_scaling.type != RopeScaling::Type::none)
      throw format_error(detail::concat("GGUF '", file.path(), "': both ", p,
                                        "rope.scaling.type '", scaling_type,
                                        "' and a rope_freqs.weight tensor"));
    config.validate();  // head_dim and rope_theta are sound before the divisors are checked
    config.rope_scaling =
        detail::gguf_llama3_scaling(file, *freqs, config.head_dim, config.rope_theta);
  }
  config.rope_layout = RopeLayout::interleaved;
  config.validate();
  detail::gguf_check_llama_tensors(file, config);
  return config;
}

}  // namespace llamablocks::io
