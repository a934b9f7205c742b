// Reader of the ".lbg" golden files written by tests/golden/make_golden.py (format in
// tests/golden/README.md). Little-endian throughout:
//   magic "LBGOLD01", uint32 n_entries, then per entry:
//   uint32 name_len, name, uint32 dtype (0 float32, 1 int32, 2 float64), uint32 ndim,
//   int64 dims[ndim], prod(dims) elements of dtype, row-major.
//
// The whole file is read into memory and parsed up front; every length, count and dimension is
// checked against the bytes that remain before anything is read, so a truncated or corrupt file
// throws golden_file_error (naming the file, the entry index and name, and what was wrong) instead
// of reading out of bounds. Catch2 reports the exception's message as the test failure.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llamablocks::test {

/// A golden file is missing, truncated, corrupt, or lacks the entry a test asked for.
class golden_file_error : public std::runtime_error {
 public:
  explicit golden_file_error(const std::string& message) : std::runtime_error(message) {}
};

enum class GoldenDtype : std::uint32_t { float32 = 0, int32 = 1, float64 = 2 };

inline const char* to_string(GoldenDtype dtype) {
  switch (dtype) {
    case GoldenDtype::float32: return "float32";
    case GoldenDtype::int32: return "int32";
    case GoldenDtype::float64: return "float64";
  }
  return "unknown";
}

/// One named tensor. Exactly one of f32 / i32 / f64 holds the data, according to dtype.
struct GoldenEntry {
  std::string name;
  GoldenDtype dtype = GoldenDtype::float32;
  std::vector<std::int64_t> shape;  ///< outermost first; empty for a scalar
  std::vector<float> f32;
  std::vector<std::int32_t> i32;
  std::vector<double> f64;

  /// Number of elements: the product of shape (1 for a scalar).
  std::size_t count() const {
    std::size_t n = 1;
    for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }

  std::string shape_string() const {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << ']';
    return out.str();
  }
};

/// A parsed golden file: entries in file order, looked up by name.
class GoldenFile {
 public:
  static constexpr char magic[9] = "LBGOLD01";
  static constexpr std::uint32_t max_ndim = 16;

  /// Reads and parses `path`; throws golden_file_error if it cannot be opened or is malformed.
  explicit GoldenFile(const std::string& path) : label_(path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) throw golden_file_error("golden file '" + path + "': cannot open");
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(stream)),
                                     std::istreambuf_iterator<char>());
    if (stream.bad()) throw golden_file_error("golden file '" + path + "': read error");
    parse(bytes);
  }

  /// Parses bytes already in memory; `label` stands for the file name in error messages.
  GoldenFile(const std::vector<unsigned char>& bytes, std::string label)
      : label_(std::move(label)) {
    parse(bytes);
  }

  const std::string& path() const { return label_; }
  const std::vector<GoldenEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

  /// The entry called `name`; throws golden_file_error naming the file if there is none.
  const GoldenEntry& entry(const std::string& name) const {
    const auto found = index_.find(name);
    if (found == index_.end()) fail("no entry named '" + name + "'");
    return entries_[found->second];
  }

  /// A float32 entry's data; throws if missing or of another dtype.
  const std::vector<float>& floats(const std::string& name) const {
    const GoldenEntry& e = entry_of(name, GoldenDtype::float32);
    return e.f32;
  }

  /// A float32 entry's data, also checking its shape.
  const std::vector<float>& floats(const std::string& name,
                                   const std::vector<std::int64_t>& expected_shape) const {
    const GoldenEntry& e = entry_of(name, GoldenDtype::float32);
    expect_shape(e, expected_shape);
    return e.f32;
  }

  /// A float64 entry's data (e.g. rope.inv_freq); throws if missing or of another dtype.
  const std::vector<double>& doubles(const std::string& name) const {
    return entry_of(name, GoldenDtype::float64).f64;
  }

  /// A float64 scalar (ndim 0), e.g. config.dim; throws if missing, not float64, or not a scalar.
  double scalar(const std::string& name) const {
    const GoldenEntry& e = entry_of(name, GoldenDtype::float64);
    if (!e.shape.empty())
      fail("entry '" + name + "' has shape " + e.shape_string() + ", expected a scalar");
    return e.f64[0];
  }

  /// A float64 scalar that must hold a whole number (config sizes); throws otherwise.
  std::int64_t integer(const std::string& name) const {
    const double value = scalar(name);
    if (!(value >= -9.0e15 && value <= 9.0e15) ||
        static_cast<double>(static_cast<std::int64_t>(value)) != value) {
      std::ostringstream message;
      message.precision(17);
      message << "entry '" << name << "' = " << value << " is not an integer";
      fail(message.str());
    }
    return static_cast<std::int64_t>(value);
  }

  /// Throws golden_file_error unless `name` has exactly `expected_shape`.
  void expect_shape(const std::string& name, const std::vector<std::int64_t>& expected_shape) const {
    expect_shape(entry(name), expected_shape);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw golden_file_error("golden file '" + label_ + "': " + what);
  }

  const GoldenEntry& entry_of(const std::string& name, GoldenDtype dtype) const {
    const GoldenEntry& e = entry(name);
    if (e.dtype != dtype)
      fail(std::string("entry '") + name + "' has dtype " + to_string(e.dtype) + ", expected " +
           to_string(dtype));
    return e;
  }

  void expect_shape(const GoldenEntry& e, const std::vector<std::int64_t>& expected) const {
    if (e.shape != expected) {
      GoldenEntry wanted;
      wanted.shape = expected;
      fail("entry '" + e.name + "' has shape " + e.shape_string() + ", expected " +
           wanted.shape_string());
    }
  }

  // Bounds-checked little-endian cursor over the file's bytes.
  class Reader {
   public:
    Reader(const GoldenFile& file, const std::vector<unsigned char>& bytes)
        : file_(file), bytes_(bytes) {}

    std::size_t offset() const { return offset_; }
    std::size_t remaining() const { return bytes_.size() - offset_; }

    /// `context` says what is being read, e.g. "entry #3 'attention.wq': dims".
    void need(std::size_t count, const std::string& context) const {
      if (count > remaining()) {
        std::ostringstream message;
        message << context << ": needs " << count << " bytes at offset " << offset_ << ", only "
                << remaining() << " left (file of " << bytes_.size()
                << " bytes is truncated or corrupt)";
        file_.fail(message.str());
      }
    }

    std::uint64_t unsigned_le(std::size_t width, const std::string& context) {
      need(width, context);
      std::uint64_t value = 0;
      for (std::size_t i = 0; i < width; ++i)
        value |= static_cast<std::uint64_t>(bytes_[offset_ + i]) << (8 * i);
      offset_ += width;
      return value;
    }
    std::uint32_t u32(const std::string& context) {
      return static_cast<std::uint32_t>(unsigned_le(4, context));
    }
    std::int64_t i64(const std::string& context) {
      const std::uint64_t bits = unsigned_le(8, context);
      std::int64_t value;
      std::memcpy(&value, &bits, sizeof value);
      return value;
    }

    std::string text(std::size_t length, const std::string& context) {
      need(length, context);
      std::string value(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
      offset_ += length;
      return value;
    }

    /// Reads `count` little-endian elements of type Out from `Bits`-typed raw words.
    template <class Out, class Bits>
    std::vector<Out> array(std::size_t count, const std::string& context) {
      static_assert(sizeof(Out) == sizeof(Bits), "array: element and bit widths differ");
      // count <= remaining() was ensured by the caller's shape check, so this cannot overflow.
      if (count > remaining()) need(remaining() + 1, context);
      need(count * sizeof(Out), context);
      std::vector<Out> values(count);
      for (std::size_t i = 0; i < count; ++i) {
        const Bits bits = static_cast<Bits>(unsigned_le(sizeof(Bits), context));
        std::memcpy(&values[i], &bits, sizeof(Out));
      }
      return values;
    }

   private:
    const GoldenFile& file_;
    const std::vector<unsigned char>& bytes_;
    std::size_t offset_ = 0;
  };

  void parse(const std::vector<unsigned char>& bytes) {
    Reader reader(*this, bytes);
    const std::string found_magic = reader.text(8, "magic");
    if (found_magic != std::string(magic, 8)) fail("bad magic (not an LBGOLD01 file)");
    const std::uint32_t n_entries = reader.u32("entry count");
    // Smallest possible entry: name_len, an empty name, dtype, ndim 0, one 4-byte element. A
    // corrupt count is caught by the bounds checks of the entry that is not there; this only
    // keeps it from reserving absurd amounts of memory.
    constexpr std::size_t min_entry_bytes = 4 + 4 + 4 + 4;
    entries_.reserve(std::min<std::size_t>(n_entries, reader.remaining() / min_entry_bytes));

    for (std::uint32_t i = 0; i < n_entries; ++i) {
      std::ostringstream where_stream;
      where_stream << "entry #" << i;
      std::string where = where_stream.str();
      std::ostringstream counted;
      counted << where << " (of " << n_entries << " declared)";

      GoldenEntry e;
      const std::uint32_t name_length = reader.u32(counted.str() + ": name length");
      e.name = reader.text(name_length, counted.str() + ": name");
      for (char c : e.name)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
          fail(where + ": name is not printable ASCII (file corrupt)");
      if (e.name.empty()) fail(where + ": empty name (file corrupt)");
      where += " '" + e.name + "'";
      if (index_.count(e.name)) fail(where + ": duplicate entry name");

      const std::uint32_t dtype = reader.u32(where + ": dtype");
      if (dtype > 2) {
        std::ostringstream message;
        message << where << ": unknown dtype " << dtype << " (0 float32, 1 int32, 2 float64)";
        fail(message.str());
      }
      e.dtype = static_cast<GoldenDtype>(dtype);

      const std::uint32_t ndim = reader.u32(where + ": ndim");
      if (ndim > max_ndim) {
        std::ostringstream message;
        message << where << ": ndim " << ndim << " exceeds " << max_ndim << " (file corrupt)";
        fail(message.str());
      }
      reader.need(std::size_t{8} * ndim, where + ": dims");
      std::size_t count = 1;
      for (std::uint32_t d = 0; d < ndim; ++d) {
        const std::int64_t extent = reader.i64(where + ": dims");
        if (extent < 0) {
          std::ostringstream message;
          message << where << ": dimension " << d << " is negative (" << extent << ")";
          fail(message.str());
        }
        const auto unsigned_extent = static_cast<std::uint64_t>(extent);
        // Bound the element count by the bytes left, so that it can neither overflow nor exceed
        // the file (an extent of 0 makes the rest irrelevant).
        if (unsigned_extent != 0 && count > reader.remaining() / unsigned_extent) {
          std::ostringstream message;
          message << where << ": shape too large for the " << reader.remaining()
                  << " bytes left (file truncated or corrupt)";
          fail(message.str());
        }
        count *= static_cast<std::size_t>(unsigned_extent);
        e.shape.push_back(extent);
      }

      const std::string data_context = where + " " + e.shape_string() + " " +
                                       to_string(e.dtype) + ": data";
      switch (e.dtype) {
        case GoldenDtype::float32: e.f32 = reader.array<float, std::uint32_t>(count, data_context); break;
        case GoldenDtype::int32: e.i32 = reader.array<std::int32_t, std::uint32_t>(count, data_context); break;
        case GoldenDtype::float64: e.f64 = reader.array<double, std::uint64_t>(count, data_context); break;
      }
      index_.emplace(e.name, entries_.size());
      entries_.push_back(std::move(e));
    }
    if (reader.remaining() != 0) {
      std::ostringstream message;
      message << reader.remaining() << " unexpected trailing bytes after the last of "
              << n_entries << " entries (file corrupt)";
      fail(message.str());
    }
  }

  std::string label_;
  std::vector<GoldenEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

/// Path of a file in tests/golden (LLAMABLOCKS_GOLDEN_DIR is defined by tests/CMakeLists.txt).
inline std::string golden_path(const std::string& file_name) {
#ifdef LLAMABLOCKS_GOLDEN_DIR
  return std::string(LLAMABLOCKS_GOLDEN_DIR) + "/" + file_name;
#else
  return "tests/golden/" + file_name;
#endif
}

}  // namespace llamablocks::test
