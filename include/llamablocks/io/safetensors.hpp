// SafetensorsFile: reader of Hugging Face's safetensors format.
//
// Layout (little-endian):
//   uint64   N                  length of the header in bytes (at most safetensors_max_header_bytes)
//   N bytes  header             a JSON object (io/json.hpp), maybe padded with trailing spaces:
//              "__metadata__": { "key": "string value", ... }            (optional)
//              "<tensor name>": { "dtype": "F32" | "F16" | "BF16" | ...,
//                                 "shape": [d0, d1, ...]                 (outermost first),
//                                 "data_offsets": [begin, end] }         (bytes, from the data start)
//   data     the byte buffer, from offset 8 + N to the end of the file
//
// As the format's own validation demands, the tensors' [begin, end) ranges must tile the data buffer
// exactly: sorted by begin, each starts where the previous ended, the first at 0 and the last at
// the end of the file, and end - begin = element count × dtype size. Every count and offset is
// checked with overflow-safe arithmetic before use, so a truncated or hostile file throws
// format_error naming the file, the tensor, the field and the value.
//
// Only the header is read when the file is opened. load_f32() reads one tensor with pread straight
// into a freshly allocated Tensor (anonymous memory, which decodes faster than a file-backed map;
// an F32 tensor lands in its final place with no staging copy), converting F16/BF16 to float32 in
// chunks, so the peak memory of loading a model is the model as used.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/io/dequantize.hpp"
#include "llamablocks/io/format_error.hpp"
#include "llamablocks/io/json.hpp"
#include "llamablocks/io/little_endian.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llamablocks::io {

/// The format caps its JSON header at 100 MB; so does this reader.
inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;

/// One tensor entry of a safetensors header.
struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype;              ///< as written: "F32", "BF16", ...
  std::uint64_t element_bytes = 0;
  std::vector<index_t> shape;     ///< outermost first
  std::int64_t element_count = 1;
  std::uint64_t begin = 0;        ///< byte range in the data buffer
  std::uint64_t end = 0;
};

}  // namespace llamablocks::io

namespace llamablocks::detail {

/// Bytes per element of a safetensors dtype, or 0 when the name is not one.
inline std::uint64_t safetensors_dtype_bytes(const std::string& dtype) {
  static const std::unordered_map<std::string, std::uint64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},     {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"U16", 2}, {"U32", 4}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

/// An open file descriptor, closed when the last owner lets go.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace llamablocks::detail

namespace llamablocks::io {

class SafetensorsFile {
 public:
  /// Opens `path` and reads its header. \throws format_error.
  static SafetensorsFile open(const std::string& path) {
    SafetensorsFile file;
    file.path_ = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) file.fail(detail::concat("cannot open: ", std::strerror(errno)));
    file.fd_ = std::make_shared<detail::FileDescriptor>(fd);
    struct stat info {};
    if (::fstat(fd, &info) != 0) file.fail(detail::concat("cannot stat: ", std::strerror(errno)));
    if (!S_ISREG(info.st_mode)) file.fail("is not a regular file");
    file.size_ = static_cast<std::uint64_t>(info.st_size);
    file.parse_header();
    return file;
  }

  const std::string& path() const { return path_; }
  std::uint64_t file_size() const { return size_; }
  /// Offset of the data buffer: 8 + the header length.
  std::uint64_t data_offset() const { return data_offset_; }
  /// The "__metadata__" strings (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Tensors in the header's order.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  const SafetensorsTensorInfo* find_tensor(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  const SafetensorsTensorInfo& tensor(const std::string& name) const {
    const SafetensorsTensorInfo* found = find_tensor(name);
    if (!found) fail(detail::concat("no tensor named '", name, "'"));
    return *found;
  }

  /// Reads tensor `name` as float32 (F32 as is, F16 and BF16 converted).
  /// \throws shape_error when its shape is not `expected`; format_error for another dtype or a
  ///         failed read.
  template <int Rank>
  Tensor<float, Rank> load_f32(const std::string& name, const Shape<Rank>& expected) const {
    const SafetensorsTensorInfo& info = tensor(name);
    const bool same_shape =
        info.shape.size() == static_cast<std::size_t>(Rank) &&
        std::equal(info.shape.begin(), info.shape.end(), expected.begin());
    if (!same_shape)
      throw shape_error(detail::concat("safetensors '", path_, "': tensor '", name, "' has shape ",
                                       detail::format_extents(info.shape), " (", info.dtype,
                                       "), expected ", detail::format_shape(expected)));
    if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16")
      fail(detail::concat("tensor '", name, "' has dtype ", info.dtype,
                          ", which load_f32 cannot convert (supported: F32, F16, BF16)"));
    Tensor<float, Rank> result(expected);
    const std::uint64_t offset = data_offset_ + info.begin;
    if (info.dtype == "F32") {
      read_exactly(name, result.data(), info.end - info.begin, offset);
      if (!detail::host_is_little_endian()) {
        auto* bytes = reinterpret_cast<unsigned char*>(result.data());
        for (std::int64_t i = 0; i < info.element_count; ++i) {
          const auto bits = detail::load_le<std::uint32_t>(bytes + 4 * i);
          std::memcpy(bytes + 4 * i, &bits, 4);
        }
      }
      return result;
    }
    // 16-bit types: read a chunk, widen it, repeat.
    constexpr std::int64_t chunk_elements = 1 << 18;
    std::vector<unsigned char> staging(
        static_cast<std::size_t>(2 * std::min<std::int64_t>(chunk_elements, info.element_count)));
    for (std::int64_t first = 0; first < info.element_count; first += chunk_elements) {
      const std::int64_t count = std::min(chunk_elements, info.element_count - first);
      read_exactly(name, staging.data(), static_cast<std::uint64_t>(2 * count),
                   offset + static_cast<std::uint64_t>(2 * first));
      if (info.dtype == "F16")
        detail::dequantize_f16(staging.data(), result.data() + first, count);
      else
        detail::dequantize_bf16(staging.data(), result.data() + first, count);
    }
    return result;
  }

 private:
  SafetensorsFile() = default;

  [[noreturn]] void fail(const std::string& problem) const {
    throw format_error(detail::concat("safetensors '", path_, "': ", problem));
  }

  void read_exactly(const std::string& what, void* destination, std::uint64_t bytes,
                    std::uint64_t offset) const {
    auto* out = static_cast<unsigned char*>(destination);
    while (bytes > 0) {
      const std::size_t request = static_cast<std::size_t>(
          std::min<std::uint64_t>(bytes, std::uint64_t{1} << 30));
      const ::ssize_t got = ::pread(fd_->get(), out, request, static_cast<::off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        fail(detail::concat("reading ", what, " at byte ", offset, ": ",
                            got < 0 ? std::strerror(errno) : "unexpected end of file"));
      out += got;
      bytes -= static_cast<std::uint64_t>(got);
      offset += static_cast<std::uint64_t>(got);
    }
  }

  void parse_header() {
    if (size_ < 8) fail(detail::concat("file of ", size_, " bytes is too short for the 8-byte header length"));
    unsigned char length_bytes[8];
    read_exactly("the header length", length_bytes, 8, 0);
    const auto header_bytes = detail::load_le<std::uint64_t>(length_bytes);
    if (header_bytes > safetensors_max_header_bytes)
      fail(detail::concat("header length ", header_bytes, " exceeds the format's limit of ",
                          safetensors_max_header_bytes, " bytes"));
    if (header_bytes > size_ - 8)
      fail(detail::concat("header length ", header_bytes, " runs past the end of the ", size_,
                          "-byte file"));
    data_offset_ = 8 + header_bytes;
    std::string header(static_cast<std::size_t>(header_bytes), '\0');
    read_exactly("the header", header.data(), header_bytes, 8);
    const JsonValue root = parse_json(header, "safetensors '" + path_ + "' header");
    if (!root.is_object()) fail(detail::concat("header must be a JSON object, got ", root.kind_name()));

    const auto& keys = root.keys();
    const auto& values = root.values();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == "__metadata__") {
        read_metadata(values[i]);
        continue;
      }
      tensors_.push_back(read_tensor(keys[i], values[i]));
      index_.emplace(keys[i], tensors_.size() - 1);
    }
    check_tiling();
  }

  void read_metadata(const JsonValue& metadata) {
    if (!metadata.is_object())
      fail(detail::concat("__metadata__ must be an object, got ", metadata.kind_name()));
    const auto& keys = metadata.keys();
    const auto& values = metadata.values();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (!values[i].is_string())
        fail(detail::concat("__metadata__ '", keys[i], "' must be a string, got ",
                            values[i].kind_name()));
      metadata_.emplace(keys[i], values[i].as_string());
    }
  }

  SafetensorsTensorInfo read_tensor(const std::string& name, const JsonValue& entry) const {
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) fail(detail::concat(where, " must be an object, got ", entry.kind_name()));
    const auto field = [&](const char* key) -> const JsonValue& {
      const JsonValue* found = entry.find(key);
      if (!found) fail(detail::concat(where, " has no \"", key, "\""));
      return *found;
    };
    SafetensorsTensorInfo info;
    info.name = name;
    const JsonValue& dtype = field("dtype");
    if (!dtype.is_string()) fail(detail::concat(where, " dtype must be a string, got ", dtype.kind_name()));
    info.dtype = dtype.as_string();
    info.element_bytes = detail::safetensors_dtype_bytes(info.dtype);
    if (info.element_bytes == 0) fail(detail::concat(where, " has unknown dtype '", info.dtype, "'"));

    const JsonValue& shape = field("shape");
    if (!shape.is_array()) fail(detail::concat(where, " shape must be an array, got ", shape.kind_name()));
    for (const JsonValue& extent : shape.elements()) {
      if (!extent.is_integer() || extent.as_integer() < 0)
        fail(detail::concat(where, " shape must hold integers >= 0, got ",
                            extent.is_number() ? std::to_string(extent.as_number())
                                               : std::string(extent.kind_name())));
      const std::int64_t value = extent.as_integer();
      if (value != 0 && info.element_count > std::numeric_limits<std::int64_t>::max() / value)
        fail(detail::concat(where, " shape ", format_json_shape(shape), " overflows int64"));
      info.element_count *= value;
      info.shape.push_back(value);
    }

    const JsonValue& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.elements().size() != 2)
      fail(detail::concat(where, " data_offsets must be an array [begin, end]"));
    for (std::size_t i = 0; i < 2; ++i) {
      const JsonValue& offset = offsets.elements()[i];
      if (!offset.is_integer() || offset.as_integer() < 0)
        fail(detail::concat(where, " data_offsets[", i, "] must be an integer >= 0"));
    }
    info.begin = static_cast<std::uint64_t>(offsets.elements()[0].as_integer());
    info.end = static_cast<std::uint64_t>(offsets.elements()[1].as_integer());
    const std::uint64_t data_bytes = size_ - data_offset_;
    if (info.begin > info.end || info.end > data_bytes)
      fail(detail::concat(where, " data_offsets [", info.begin, ", ", info.end,
                          "] do not lie inside the ", data_bytes, "-byte data buffer"));
    const auto count = static_cast<std::uint64_t>(info.element_count);
    if (count > std::numeric_limits<std::uint64_t>::max() / info.element_bytes ||
        count * info.element_bytes != info.end - info.begin)
      fail(detail::concat(where, " holds ", info.end - info.begin, " bytes, but shape ",
                          detail::format_extents(info.shape), " of ", info.dtype, " needs ",
                          count, " x ", info.element_bytes));
    return info;
  }

  static std::string format_json_shape(const JsonValue& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.elements().size(); ++i) {
      const JsonValue& extent = shape.elements()[i];
      text += (i ? ", " : "") + (extent.is_integer() ? std::to_string(extent.as_integer()) : "?");
    }
    return text + "]";
  }

  /// The tensors must cover the data buffer exactly, without gaps or overlaps.
  void check_tiling() const {
    std::vector<const SafetensorsTensorInfo*> by_offset;
    for (const auto& info : tensors_) by_offset.push_back(&info);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const SafetensorsTensorInfo* a, const SafetensorsTensorInfo* b) {
                return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
              });
    std::uint64_t expected_begin = 0;
    for (const SafetensorsTensorInfo* info : by_offset) {
      if (info->begin != expected_begin)
        fail(detail::concat("tensor '", info->name, "' data_offsets begin at ", info->begin,
                            " where byte ", expected_begin,
                            info->begin < expected_begin ? " is already used (overlap)"
                                                         : " is expected (gap)"));
      expected_begin = info->end;
    }
    const std::uint64_t data_bytes = size_ - data_offset_;
    if (expected_begin != data_bytes)
      fail(detail::concat("tensors cover ", expected_begin, " bytes of the ", data_bytes,
                          "-byte data buffer"));
  }

  std::string path_;
  std::shared_ptr<detail::FileDescriptor> fd_;
  std::uint64_t size_ = 0;
  std::uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace llamablocks::io
