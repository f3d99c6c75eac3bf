// parse_gguf on hand-built images: the valid layouts of spec §5.1 written byte by byte (an oracle
// independent of our writer), and one test per malformation asserting the exact one-line error
// "<file>: <problem> at byte <offset>".
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/gguf/gguf_reader.h"

namespace v4 {
namespace {

using T = GgufValueType;

// Builds GGUF images field by field (little-endian, spec §5.1).
class GgufBytes {
 public:
  template <class V>
  GgufBytes& put(V value) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(V));
    std::memcpy(bytes_.data() + at, &value, sizeof(V));
    return *this;
  }
  GgufBytes& u8(uint8_t v) { return put(v); }
  GgufBytes& u16(uint16_t v) { return put(v); }
  GgufBytes& u32(uint32_t v) { return put(v); }
  GgufBytes& u64(uint64_t v) { return put(v); }
  GgufBytes& raw(std::string_view text) {
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    return *this;
  }
  GgufBytes& str(std::string_view text) { return u64(text.size()).raw(text); }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_entries, uint32_t version = 3) {
    return u32(kGgufMagic).u32(version).u64(n_tensors).u64(n_entries);
  }
  GgufBytes& key(std::string_view name, T type) { return str(name).u32(uint32_t(type)); }
  GgufBytes& array(std::string_view name, T element_type, uint64_t count) {
    return key(name, T::ARRAY).u32(uint32_t(element_type)).u64(count);
  }
  GgufBytes& tensor(std::string_view name, std::vector<uint64_t> dims, GgmlType type,
                    uint64_t offset) {
    str(name).u32(uint32_t(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(uint32_t(type)).u64(offset);
  }
  GgufBytes& zeros(size_t n) {
    bytes_.resize(bytes_.size() + n, 0);
    return *this;
  }
  GgufBytes& pad(size_t alignment) { return zeros((alignment - size() % alignment) % alignment); }
  GgufBytes& cut(size_t size) {
    bytes_.resize(size);
    return *this;
  }
  size_t size() const { return bytes_.size(); }
  std::span<const uint8_t> span() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// The parse error of an image named "bad.gguf", or "parsed" when it is accepted.
std::string error_of(const GgufBytes& bytes) {
  Result<GgufContainer> parsed = parse_gguf("bad.gguf", bytes.span());
  return parsed ? "parsed" : parsed.message();
}

// Header (24 bytes) + "general.name" = "tiny" (36 bytes): the prefix most cases extend.
GgufBytes named(uint64_t n_tensors, uint64_t n_entries) {
  GgufBytes b;
  b.header(n_tensors, n_entries).key("general.name", T::STRING).str("tiny");
  return b;
}

// ---- valid images ----------------------------------------------------------------------------

TEST(GgufParse, ReadsAHandBuiltV3Image) {
  GgufBytes b = named(2, 2);
  b.array("a.u16", T::U16, 2).u16(3).u16(65535);
  b.tensor("a", {4, 2}, GgmlType::F32, 0);  // 32 bytes of data
  b.tensor("q", {32}, GgmlType::Q8_0, 64);  // 34 bytes of data
  b.pad(32);
  const size_t data_offset = b.size();
  b.zeros(32).raw("abcdefghijklmnopqrstuvwxyz012345").zeros(34);  // "a" then padding then "q"
  Result<GgufContainer> parsed = parse_gguf("ok.gguf", b.span());
  ASSERT_TRUE(parsed.is_ok()) << parsed.message();
  const GgufContainer& c = *parsed;
  EXPECT_EQ(c.version, 3u);
  EXPECT_EQ(c.alignment, 32u);
  EXPECT_EQ(c.data_offset, data_offset);
  ASSERT_EQ(c.metadata.size(), 2u);
  EXPECT_EQ(c.metadata[0].value, GgufValue::string("tiny"));
  EXPECT_EQ(c.metadata[1].value,
            GgufValue::array(T::U16, {GgufValue::u16(3), GgufValue::u16(65535)}));
  EXPECT_EQ(c.metadata_offsets, (std::vector<uint64_t>{48, 77}));
  ASSERT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(c.tensors[0].dims, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(c.tensors[0].n_elements, 8u);
  EXPECT_EQ(c.tensors[0].n_bytes, 32u);
  EXPECT_EQ(c.tensors[1].type, GgmlType::Q8_0);
  EXPECT_EQ(c.tensors[1].n_bytes, 34u);
  EXPECT_EQ(c.tensors[1].file_offset, data_offset + 64);
  EXPECT_EQ(c.tensors[1].data, b.span().data() + data_offset + 64);
}

TEST(GgufParse, AcceptsVersion2WhichHasTheSameLayout) {
  GgufBytes b;
  b.header(0, 1, 2).key("k", T::BOOL).u8(1);
  Result<GgufContainer> parsed = parse_gguf("v2.gguf", b.span());
  ASSERT_TRUE(parsed.is_ok()) << parsed.message();
  EXPECT_EQ(parsed->version, 2u);
}

TEST(GgufParse, AcceptsNoTensorsAndNoTrailingPadding) {
  EXPECT_EQ(error_of(named(0, 1)), "parsed");
}

TEST(GgufParse, HonoursGeneralAlignment) {
  GgufBytes b;
  b.header(1, 1).key("general.alignment", T::U32).u32(64).tensor("w", {4}, GgmlType::F32, 0);
  b.pad(64).zeros(16);
  Result<GgufContainer> parsed = parse_gguf("a.gguf", b.span());
  ASSERT_TRUE(parsed.is_ok()) << parsed.message();
  EXPECT_EQ(parsed->alignment, 64u);
  EXPECT_EQ(parsed->data_offset, 128u);  // the header ends at byte 97
}

// ---- header ----------------------------------------------------------------------------------

TEST(GgufMalformed, EmptyFile) {
  EXPECT_EQ(error_of(GgufBytes()), "bad.gguf: truncated magic at byte 0");
}

TEST(GgufMalformed, WrongMagic) {
  GgufBytes b;
  b.raw("GGUX").u32(3).u64(0).u64(0);
  EXPECT_EQ(error_of(b), "bad.gguf: bad magic 0x58554747 (expected 0x46554747 \"GGUF\") at byte 0");
}

TEST(GgufMalformed, Version1) {
  GgufBytes b;
  b.header(0, 0, 1);
  EXPECT_EQ(error_of(b), "bad.gguf: unsupported version 1 (expected 2 or 3) at byte 4");
}

TEST(GgufMalformed, UnknownVersion) {
  GgufBytes b;
  b.header(0, 0, 4);
  EXPECT_EQ(error_of(b), "bad.gguf: unsupported version 4 (expected 2 or 3) at byte 4");
}

TEST(GgufMalformed, BigEndianVersion) {
  GgufBytes b;
  b.header(0, 0, 0x03000000);
  EXPECT_EQ(error_of(b), "bad.gguf: big-endian GGUF is not supported at byte 4");
}

TEST(GgufMalformed, TruncatedVersion) {
  EXPECT_EQ(error_of(GgufBytes().u32(kGgufMagic).u16(3)), "bad.gguf: truncated version at byte 4");
}

TEST(GgufMalformed, TruncatedTensorCount) {
  EXPECT_EQ(error_of(GgufBytes().header(0, 0).cut(12)),
            "bad.gguf: truncated tensor count at byte 8");
}

TEST(GgufMalformed, TruncatedMetadataCount) {
  EXPECT_EQ(error_of(GgufBytes().header(0, 0).cut(23)),
            "bad.gguf: truncated metadata count at byte 16");
}

TEST(GgufMalformed, TensorCountExceedsRemainingBytes) {
  EXPECT_EQ(
      error_of(GgufBytes().header(UINT64_MAX, 0)),
      "bad.gguf: tensor count 18446744073709551615 needs more than the 0 bytes left at byte 8");
}

TEST(GgufMalformed, TensorCountExceedsBytesLeftAfterMetadata) {
  // 64 bytes after the header pass the first check (2 infos need 64), but the metadata uses 36.
  GgufBytes b = named(2, 1);
  b.zeros(28);
  EXPECT_EQ(error_of(b), "bad.gguf: tensor count 2 needs more than the 28 bytes left at byte 8");
}

TEST(GgufMalformed, MetadataCountWhoseByteSizeOverflows) {
  // 2^62 entries of at least 13 bytes: the product overflows u64, the check must not.
  EXPECT_EQ(error_of(GgufBytes().header(0, 1ull << 62).zeros(100)),
            "bad.gguf: metadata count 4611686018427387904 needs more than the 100 bytes left at "
            "byte 16");
}

// ---- keys and values -------------------------------------------------------------------------

TEST(GgufMalformed, TruncatedKeyLength) {
  GgufBytes b = named(0, 2);
  b.u32(5);  // half of the second key's length; 40 bytes left pass the count check (2 x 13)
  EXPECT_EQ(error_of(b), "bad.gguf: truncated key length at byte 60");
}

TEST(GgufMalformed, TruncatedKey) {
  GgufBytes b;
  b.header(0, 1).u64(12).raw("gener");  // 13 bytes: the count check passes, the key does not fit
  EXPECT_EQ(error_of(b), "bad.gguf: key length 12 exceeds the 5 bytes left at byte 24");
}

TEST(GgufMalformed, KeyLengthOverflows) {
  GgufBytes b;
  b.header(0, 1).u64(UINT64_MAX).zeros(8);
  EXPECT_EQ(error_of(b),
            "bad.gguf: key length 18446744073709551615 exceeds the 8 bytes left at byte 24");
}

TEST(GgufMalformed, DuplicateKey) {
  GgufBytes b = named(0, 2);
  b.key("general.name", T::STRING).str("again");
  EXPECT_EQ(error_of(b), "bad.gguf: duplicate key 'general.name' at byte 60");
}

TEST(GgufMalformed, TruncatedValueType) {
  GgufBytes b;
  b.header(0, 1).str("a.b").u16(4).zeros(0);  // 13 bytes after the header
  EXPECT_EQ(error_of(b), "bad.gguf: truncated value type of key 'a.b' at byte 35");
}

TEST(GgufMalformed, InvalidValueType) {
  GgufBytes b;
  b.header(0, 1).key("a.b", T(13)).u32(0);
  EXPECT_EQ(error_of(b), "bad.gguf: invalid value type 13 of key 'a.b' at byte 35");
}

TEST(GgufMalformed, TruncatedScalarValue) {
  GgufBytes b;
  b.header(0, 1).key("a.u64", T::U64).u32(0);  // 4 of the value's 8 bytes
  EXPECT_EQ(error_of(b), "bad.gguf: truncated value of key 'a.u64' at byte 41");
}

TEST(GgufMalformed, TruncatedStringValue) {
  GgufBytes b;
  b.header(0, 1).key("general.name", T::STRING).u64(1000).raw("tiny");
  EXPECT_EQ(
      error_of(b),
      "bad.gguf: string length 1000 of key 'general.name' exceeds the 4 bytes left at byte 48");
}

TEST(GgufMalformed, TruncatedStringLength) {
  GgufBytes b;
  b.header(0, 1).key("general.name", T::STRING).u32(4);
  EXPECT_EQ(error_of(b), "bad.gguf: truncated string length of key 'general.name' at byte 48");
}

TEST(GgufMalformed, BoolNotZeroOrOne) {
  GgufBytes b;
  b.header(0, 1).key("a.flag", T::BOOL).u8(2);
  EXPECT_EQ(error_of(b), "bad.gguf: bool value 2 of key 'a.flag' is not 0 or 1 at byte 42");
}

TEST(GgufMalformed, BoolInArrayNotZeroOrOne) {
  GgufBytes b;
  b.header(0, 1).array("a.flags", T::BOOL, 3).u8(1).u8(0).u8(255);
  EXPECT_EQ(error_of(b), "bad.gguf: bool value 255 of key 'a.flags' is not 0 or 1 at byte 57");
}

TEST(GgufMalformed, KeyWithControlBytesStaysOnOneLine) {
  GgufBytes b;
  b.header(0, 1).key("a\nb", T::BOOL).u8(7);
  EXPECT_EQ(error_of(b), "bad.gguf: bool value 7 of key 'a\\x0ab' is not 0 or 1 at byte 39");
}

TEST(GgufMalformed, LongKeysAreCutInMessages) {
  const std::string key(200, 'k');
  GgufBytes b;
  b.header(0, 2).key(key, T::U8).u8(1).key(key, T::U8).u8(1);
  EXPECT_EQ(error_of(b), "bad.gguf: duplicate key '" + std::string(128, 'k') + "...' at byte 237");
}

// ---- arrays ----------------------------------------------------------------------------------

TEST(GgufMalformed, InvalidArrayElementType) {
  GgufBytes b;
  b.header(0, 1).array("a.arr", T(99), 0);
  EXPECT_EQ(error_of(b), "bad.gguf: invalid array element type 99 of key 'a.arr' at byte 41");
}

TEST(GgufMalformed, TruncatedArrayCount) {
  GgufBytes b;
  b.header(0, 1).key("a.arr", T::ARRAY).u32(uint32_t(T::U32)).u32(1);
  EXPECT_EQ(error_of(b), "bad.gguf: truncated array count of key 'a.arr' at byte 45");
}

TEST(GgufMalformed, ArrayCountExceedsRemainingBytes) {
  GgufBytes b;
  b.header(0, 1).array("a.arr", T::U32, 1000).u32(1).u32(2);
  EXPECT_EQ(
      error_of(b),
      "bad.gguf: array count 1000 of key 'a.arr' needs more than the 8 bytes left at byte 45");
}

TEST(GgufMalformed, ArrayCountWhoseByteSizeOverflows) {
  // 2^61 u64 elements are 2^64 bytes: the product wraps to 0, the check must not.
  GgufBytes b;
  b.header(0, 1).array("a.arr", T::U64, 1ull << 61).u64(1);
  EXPECT_EQ(error_of(b),
            "bad.gguf: array count 2305843009213693952 of key 'a.arr' needs more than the 8 bytes "
            "left at byte 45");
}

TEST(GgufMalformed, TruncatedArrayElement) {
  // Two strings need at least 16 bytes: "ab" (10) + 6 pass the count check; the second's length
  // field does not fit.
  GgufBytes b;
  b.header(0, 1).array("a.arr", T::STRING, 2).str("ab").zeros(6);
  EXPECT_EQ(error_of(b), "bad.gguf: truncated string length of key 'a.arr' at byte 63");
}

TEST(GgufMalformed, TruncatedNestedArray) {
  GgufBytes b;
  b.header(0, 1).array("a.arr", T::ARRAY, 1).u32(uint32_t(T::U8)).u64(4).u8(1).u8(2);
  EXPECT_EQ(error_of(b),
            "bad.gguf: array count 4 of key 'a.arr' needs more than the 2 bytes left at byte 57");
}

TEST(GgufMalformed, ArraysNestedTooDeep) {
  // 17 levels of single-element arrays; the 16th may not hold arrays.
  GgufBytes b;
  b.header(0, 1).key("a.deep", T::ARRAY);
  for (int level = 1; level < 17; ++level) b.u32(uint32_t(T::ARRAY)).u64(1);
  b.u32(uint32_t(T::U8)).u64(1).u8(0);
  // Key ends at 24 + 14 + 4 = 42; levels 1..15 take 12 bytes each.
  EXPECT_EQ(error_of(b), "bad.gguf: arrays of key 'a.deep' nest deeper than 16 levels at byte 222");
}

TEST(GgufMalformed, SixteenLevelsOfArraysAreAccepted) {
  GgufBytes b;
  b.header(0, 1).key("a.deep", T::ARRAY);
  for (int level = 1; level < 16; ++level) b.u32(uint32_t(T::ARRAY)).u64(1);
  b.u32(uint32_t(T::U8)).u64(1).u8(0);
  EXPECT_EQ(error_of(b), "parsed");
}

// ---- general.alignment -----------------------------------------------------------------------

TEST(GgufMalformed, AlignmentZero) {
  GgufBytes b;
  b.header(0, 1).key("general.alignment", T::U32).u32(0);
  EXPECT_EQ(error_of(b), "bad.gguf: general.alignment 0 is not a nonzero power of two at byte 53");
}

TEST(GgufMalformed, AlignmentNotAPowerOfTwo) {
  GgufBytes b;
  b.header(0, 1).key("general.alignment", T::U32).u32(48);
  EXPECT_EQ(error_of(b), "bad.gguf: general.alignment 48 is not a nonzero power of two at byte 53");
}

TEST(GgufMalformed, AlignmentOfAnotherType) {
  GgufBytes b;
  b.header(0, 1).key("general.alignment", T::U64).u64(64);
  EXPECT_EQ(error_of(b), "bad.gguf: general.alignment has type U64, expected U32 at byte 53");
}

// ---- tensor infos ----------------------------------------------------------------------------

// Header + general.name (ends at byte 60) + the tensor info under test.
GgufBytes with_tensor(std::string_view name, std::vector<uint64_t> dims, GgmlType type,
                      uint64_t offset) {
  GgufBytes b = named(1, 1);
  b.tensor(name, std::move(dims), type, offset);
  return b;
}

TEST(GgufMalformed, TruncatedTensorInfo) {
  // A name long enough that the 32 bytes one tensor info needs at least are still there.
  GgufBytes b = with_tensor("blk.0.attn_q_a.weight", {4, 4}, GgmlType::F32, 0);
  b.cut(60 + 29 + 4 + 8 + 3);  // cut inside the second dimension
  EXPECT_EQ(error_of(b),
            "bad.gguf: truncated dimension 1 of tensor 'blk.0.attn_q_a.weight' at byte 101");
}

TEST(GgufMalformed, TruncatedTensorOffset) {
  GgufBytes b = with_tensor("w", {4}, GgmlType::F32, 0);
  b.cut(b.size() - 1);
  EXPECT_EQ(error_of(b), "bad.gguf: truncated offset of tensor 'w' at byte 85");
}

TEST(GgufMalformed, TensorNameLengthExceedsRemainingBytes) {
  GgufBytes b = named(1, 1);
  b.u64(1ull << 40).zeros(24);
  EXPECT_EQ(error_of(b),
            "bad.gguf: tensor name length 1099511627776 exceeds the 24 bytes left at byte 60");
}

TEST(GgufMalformed, TooManyDims) {
  GgufBytes b = with_tensor("w", {1, 1, 1, 1, 1}, GgmlType::F32, 0);
  EXPECT_EQ(error_of(b), "bad.gguf: n_dims 5 of tensor 'w' is not in 1..4 at byte 69");
}

TEST(GgufMalformed, ZeroDims) {
  GgufBytes b = with_tensor("w", {}, GgmlType::F32, 0);
  b.zeros(8);  // keep 32 bytes per declared tensor info
  EXPECT_EQ(error_of(b), "bad.gguf: n_dims 0 of tensor 'w' is not in 1..4 at byte 69");
}

TEST(GgufMalformed, DimensionOfZero) {
  GgufBytes b = with_tensor("w", {4, 0}, GgmlType::F32, 0);
  EXPECT_EQ(error_of(b), "bad.gguf: dimension 1 of tensor 'w' is 0 at byte 81");
}

TEST(GgufMalformed, ElementCountOverflows) {
  GgufBytes b = with_tensor("w", {1ull << 32, 1ull << 32}, GgmlType::F32, 0);
  EXPECT_EQ(error_of(b), "bad.gguf: element count of tensor 'w' overflows u64 at byte 81");
}

TEST(GgufMalformed, ByteSizeOverflows) {
  // 2^62 F32 values are 2^64 bytes.
  GgufBytes b = with_tensor("w", {1ull << 62}, GgmlType::F32, 0);
  EXPECT_EQ(error_of(b), "bad.gguf: byte size of tensor 'w' overflows u64 at byte 81");
}

TEST(GgufMalformed, RowLengthNotAMultipleOfTheBlockSize) {
  GgufBytes b = with_tensor("w", {48, 2}, GgmlType::Q8_0, 0);
  EXPECT_EQ(error_of(b),
            "bad.gguf: row length 48 of tensor 'w' is not a multiple of the block size 32 of Q8_0 "
            "at byte 89");
}

TEST(GgufMalformed, UnknownGgmlType) {
  // Id 4 was Q4_2, removed from ggml; no current type uses it.
  GgufBytes b = with_tensor("w", {32}, GgmlType(4), 0);
  EXPECT_EQ(error_of(b), "bad.gguf: unknown ggml type 4 of tensor 'w' at byte 81");
}

TEST(GgufMalformed, DuplicateTensorName) {
  GgufBytes b = named(2, 1);
  b.tensor("w", {8}, GgmlType::F32, 0).tensor("w", {8}, GgmlType::F32, 32).pad(32).zeros(64);
  EXPECT_EQ(error_of(b), "bad.gguf: duplicate tensor name 'w' at byte 93");
}

// ---- tensor data -----------------------------------------------------------------------------

TEST(GgufMalformed, TensorOffsetNotAligned) {
  GgufBytes b = with_tensor("w", {4}, GgmlType::F32, 4);
  b.pad(32).zeros(32);
  EXPECT_EQ(error_of(b),
            "bad.gguf: offset 4 of tensor 'w' is not a multiple of the alignment 32 at byte 85");
}

TEST(GgufMalformed, TensorOffsetOutsideTheFile) {
  GgufBytes b = with_tensor("w", {4}, GgmlType::F32, 4096);
  b.pad(32).zeros(64);  // data section at 96, 64 bytes long
  EXPECT_EQ(error_of(b),
            "bad.gguf: offset 4096 of tensor 'w' is outside the file (data section holds 64 "
            "bytes) at byte 85");
}

TEST(GgufMalformed, TensorOffsetWhoseEndOverflows) {
  // offset + n_bytes wraps around u64: must be reported as outside, not wrap into the file.
  GgufBytes b = with_tensor("w", {4}, GgmlType::F32, UINT64_MAX - 31);
  b.pad(32).zeros(64);
  EXPECT_EQ(error_of(b),
            "bad.gguf: offset 18446744073709551584 of tensor 'w' is outside the file (data "
            "section holds 64 bytes) at byte 85");
}

TEST(GgufMalformed, TruncatedTensorData) {
  GgufBytes b = with_tensor("w", {16}, GgmlType::F32, 32);
  b.pad(32).zeros(32 + 40);  // the tensor needs 64 bytes at data offset 32; 40 are there
  EXPECT_EQ(error_of(b),
            "bad.gguf: truncated data of tensor 'w' (needs 64 bytes, 40 left) at byte 128");
}

TEST(GgufMalformed, TruncatedPaddingBeforeTheData) {
  GgufBytes b = with_tensor("w", {4}, GgmlType::F32, 0);  // ends at byte 93; data would be at 96
  EXPECT_EQ(error_of(b),
            "bad.gguf: offset 0 of tensor 'w' is outside the file (data section holds 0 bytes) at "
            "byte 85");
}

TEST(GgufMalformed, OverlappingTensors) {
  GgufBytes b = named(2, 1);
  b.tensor("a", {16}, GgmlType::F32, 0).tensor("b", {8}, GgmlType::F32, 32).pad(32).zeros(96);
  EXPECT_EQ(error_of(b),
            "bad.gguf: data of tensor 'b' at offset 32 overlaps tensor 'a' at offset 0 (64 bytes) "
            "at byte 118");
}

// ---- files on disk ---------------------------------------------------------------------------

TEST(GgufFileOpen, NamesTheFileInParseErrors) {
  const auto dir = std::filesystem::path(V4_BINARY_DIR) / "gguf_test_files" / "malformed";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "version1.gguf").string();
  GgufBytes b;
  b.header(0, 0, 1);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.span().data()), std::streamsize(b.size()));
  EXPECT_EQ(GgufFile::open(path).message(),
            path + ": unsupported version 1 (expected 2 or 3) at byte 4");
}

TEST(GgufFileOpen, ReportsAMissingFile) {
  EXPECT_EQ(GgufFile::open("/nonexistent/model.gguf").message(),
            "/nonexistent/model.gguf: cannot open: No such file or directory");
}

TEST(GgufFileOpen, ReportsADirectory) {
  EXPECT_EQ(GgufFile::open("/").message(), "/: not a regular file");
}

}  // namespace
}  // namespace v4
