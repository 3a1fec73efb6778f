#pragma once
// A whole file mapped read-only into memory (RAII). Tensor views point into it, so it
// must outlive them; it is movable but not copyable. An empty file maps to an empty span.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace megrez {

class MappedFile {
 public:
  // Throws megrez::Error naming `path` when it is missing, a directory, unreadable or unmappable.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release() noexcept;

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) text file, e.g. config.json. Same errors as MappedFile.
std::string read_text_file(const std::string& path);

// Writes `bytes` to `path` (creating or truncating it); throws megrez::Error naming the path.
void write_file_bytes(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace megrez
