#include "loader/tokenizer/spm_proto.h"

#include <cstring>
#include <optional>

#include "loader/error.h"

namespace megrez::spm_proto {
namespace {

constexpr const char* kSource = "SentencePiece model";

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };
constexpr int32_t kUserDefined = 4, kUnused = 5;

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t value = 0;      // varint / fixed32 / fixed64 payload
  std::string_view bytes;  // length-delimited payload
  std::string_view raw;    // the whole field, tag included
};

// Walks the fields of one message.
class WireReader {
 public:
  explicit WireReader(std::string_view buffer) : buf_(buffer) {}
  bool done() const { return pos_ >= buf_.size(); }

  Field next() {
    size_t start = pos_;
    uint64_t tag = varint();
    Field f;
    f.number = uint32_t(tag >> 3);
    f.wire = uint32_t(tag & 7);
    if (f.number == 0 || (tag >> 3) > 0x1FFFFFFF) fail("invalid field number");
    switch (f.wire) {
      case kVarint:
        f.value = varint();
        break;
      case kFixed64:
        f.value = fixed(8);
        break;
      case kFixed32:
        f.value = fixed(4);
        break;
      case kLengthDelimited: {
        uint64_t length = varint();
        if (length > buf_.size() - pos_) fail("a field runs past the end of the data");
        f.bytes = buf_.substr(pos_, size_t(length));
        pos_ += size_t(length);
        break;
      }
      default:
        fail("unsupported wire type " + std::to_string(f.wire));
    }
    f.raw = buf_.substr(start, pos_ - start);
    return f;
  }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw Error(std::string(kSource) + ": malformed protobuf (" + what + ")");
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= buf_.size()) fail("truncated varint");
      uint8_t b = uint8_t(buf_[pos_++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  uint64_t fixed(size_t n) {
    if (n > buf_.size() - pos_) fail("truncated fixed-width field");
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(buf_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }

  std::string_view buf_;
  size_t pos_ = 0;
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(0x80 | (v & 0x7F)));
    v >>= 7;
  }
  out.push_back(char(v));
}

void put_length_delimited(std::string& out, uint32_t number, std::string_view payload) {
  put_varint(out, (uint64_t(number) << 3) | kLengthDelimited);
  put_varint(out, payload.size());
  out.append(payload);
}

Piece parse_piece(std::string_view bytes) {
  Piece p;
  WireReader r(bytes);
  while (!r.done()) {
    Field f = r.next();
    if (f.number == 1 && f.wire == kLengthDelimited) {
      p.piece = std::string(f.bytes);
    } else if (f.number == 2 && f.wire == kFixed32) {
      uint32_t bits = uint32_t(f.value);
      std::memcpy(&p.score, &bits, sizeof bits);
    } else if (f.number == 3 && f.wire == kVarint) {
      p.type = int32_t(f.value);
    }
  }
  return p;
}

}  // namespace

Model parse(std::string_view serialized) {
  Model m;
  WireReader r(serialized);
  while (!r.done()) {
    Field f = r.next();
    if (f.number == 1 && f.wire == kLengthDelimited) {
      m.pieces.push_back(parse_piece(f.bytes));
    } else if (f.number == 2 && f.wire == kLengthDelimited) {
      WireReader t(f.bytes);
      while (!t.done()) {
        Field g = t.next();
        if (g.wire != kVarint) continue;
        const int32_t value = int32_t(int64_t(g.value));  // ids are int32 (-1 as 2^64-1 on the wire)
        if (g.number == 3) m.model_type = value;
        if (g.number == 35) m.byte_fallback = g.value != 0;
        if (g.number == 40) m.unk_id = value;
        if (g.number == 41) m.bos_id = value;
        if (g.number == 42) m.eos_id = value;
        if (g.number == 43) m.pad_id = value;
      }
    } else if (f.number == 3 && f.wire == kLengthDelimited) {
      // Repeated occurrences of a message field merge, later values winning.
      WireReader n(f.bytes);
      while (!n.done()) {
        Field g = n.next();
        if (g.number == 1 && g.wire == kLengthDelimited) m.normalizer_name = std::string(g.bytes);
        if (g.number == 2 && g.wire == kLengthDelimited) m.has_precompiled_charsmap = !g.bytes.empty();
        if (g.number == 3 && g.wire == kVarint) m.add_dummy_prefix = g.value != 0;
        if (g.number == 4 && g.wire == kVarint) m.remove_extra_whitespaces = g.value != 0;
        if (g.number == 5 && g.wire == kVarint) m.escape_whitespaces = g.value != 0;
      }
    }
  }
  return m;
}

std::string without_dummy_prefix(std::string_view serialized) {
  // Appending normalizer_spec { add_dummy_prefix: false } merges into the existing spec.
  std::string out(serialized);
  std::string spec;
  put_varint(spec, (3u << 3) | kVarint);
  put_varint(spec, 0);
  put_length_delimited(out, 3, spec);
  return out;
}

std::string with_user_defined_unused(std::string_view serialized) {
  std::string out;
  out.reserve(serialized.size());
  WireReader r(serialized);
  while (!r.done()) {
    Field f = r.next();
    if (!(f.number == 1 && f.wire == kLengthDelimited) ||
        parse_piece(f.bytes).type != kUserDefined) {
      out.append(f.raw);
      continue;
    }
    // Copy the piece without its type field, then append type = UNUSED.
    std::string piece;
    WireReader p(f.bytes);
    while (!p.done()) {
      Field g = p.next();
      if (g.number != 3) piece.append(g.raw);
    }
    put_varint(piece, (3u << 3) | kVarint);
    put_varint(piece, kUnused);
    put_length_delimited(out, 1, piece);
  }
  return out;
}

}  // namespace megrez::spm_proto
