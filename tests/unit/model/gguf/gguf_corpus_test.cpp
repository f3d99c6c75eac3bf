// Oracle tests against files written by ggml's gguf-py (tests/fuzz/make_gguf_corpus.py, which
// also makes them the fuzzer's seeds): our reader must see what gguf-py wrote, and our writer
// must reproduce gguf-py's bytes exactly from what was read. Spec §5.1.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/gguf/gguf_reader.h"
#include "model/gguf/gguf_writer.h"

namespace v4 {
namespace {

namespace fs = std::filesystem;
using T = GgufValueType;

const fs::path kCorpus = fs::path(V4_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "gguf";

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

GgufFile open_ok(const std::string& name) {
  Result<GgufFile> file = GgufFile::open((kCorpus / name).string());
  EXPECT_TRUE(file.is_ok()) << file.message();
  return std::move(file).value();
}

template <class V>
std::vector<uint8_t> bytes_of(const std::vector<V>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(V));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<uint8_t> tensor_bytes(const GgufTensorInfo& info) {
  return {info.data, info.data + info.n_bytes};
}

TEST(GgufCorpus, EveryCorpusFileParses) {
  size_t n_files = 0;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    const std::vector<uint8_t> bytes = read_bytes(entry.path());
    Result<GgufContainer> parsed = parse_gguf(entry.path().string(), bytes);
    EXPECT_TRUE(parsed.is_ok()) << parsed.message();
    ++n_files;
  }
  EXPECT_GE(n_files, 5u);
}

TEST(GgufCorpus, ReadsEveryValueTypeWrittenByGgufPy) {
  const GgufFile file = open_ok("every_type.gguf");
  const auto value = [&](std::string_view key) { return *file.find(key); };
  EXPECT_EQ(value("general.architecture"), GgufValue::string("deepseek4"));
  EXPECT_EQ(value("t.u8"), GgufValue::u8(255));
  EXPECT_EQ(value("t.i8"), GgufValue::i8(-128));
  EXPECT_EQ(value("t.u16"), GgufValue::u16(65535));
  EXPECT_EQ(value("t.i16"), GgufValue::i16(-32768));
  EXPECT_EQ(value("t.u32"), GgufValue::u32(4294967295u));
  EXPECT_EQ(value("t.i32"), GgufValue::i32(INT32_MIN));
  EXPECT_EQ(value("t.f32"), GgufValue::f32(1.5f));
  EXPECT_EQ(value("t.bool"), GgufValue::boolean(true));
  EXPECT_EQ(value("t.string"), GgufValue::string("<｜begin▁of▁sentence｜>"));
  EXPECT_EQ(value("t.u64"), GgufValue::u64(UINT64_MAX));
  EXPECT_EQ(value("t.i64"), GgufValue::i64(INT64_MIN));
  EXPECT_EQ(value("t.f64"), GgufValue::f64(0.1));
  EXPECT_EQ(*file.get_int_array("a.u32"), (std::vector<int64_t>{0, 4, 128}));
  EXPECT_EQ(file.find("a.u32")->element_type, T::U32);
  EXPECT_EQ(*file.get_int_array("a.i32"), (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(*file.get_float_array("a.f32"), (std::vector<double>{10.0, 0.25}));
  EXPECT_EQ(value("a.bool"),
            GgufValue::array(T::BOOL, {GgufValue::boolean(true), GgufValue::boolean(false)}));
  EXPECT_EQ(*file.get_string_array("a.string"), (std::vector<std::string>{"Ġthe", "", "▁"}));
  EXPECT_EQ(value("a.u8"),
            GgufValue::array(T::U8, {GgufValue::u8(1), GgufValue::u8(2), GgufValue::u8(3)}));
  // gguf-py types a list of Python ints as I32.
  EXPECT_EQ(
      value("a.nested"),
      GgufValue::array(
          T::ARRAY,
          {GgufValue::array(T::STRING, {GgufValue::string("x"), GgufValue::string("y")}),
           GgufValue::array(T::I32, {GgufValue::i32(1), GgufValue::i32(2), GgufValue::i32(3)})}));
}

TEST(GgufCorpus, ReadsTensorsWrittenByGgufPy) {
  const GgufFile file = open_ok("every_type.gguf");
  ASSERT_EQ(file.tensors().size(), 4u);
  // numpy shape (2, 3) is ggml [ne0 = 3, ne1 = 2].
  const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(embd->type, GgmlType::F32);
  EXPECT_EQ(tensor_bytes(*embd), bytes_of(std::vector<float>{0, 1, 2, 3, 4, 5}));
  // IEEE binary16 encodings of 0..7.
  const GgufTensorInfo* norm = file.find_tensor("output_norm.weight");
  EXPECT_EQ(norm->type, GgmlType::F16);
  EXPECT_EQ(tensor_bytes(*norm), bytes_of(std::vector<uint16_t>{0x0000, 0x3c00, 0x4000, 0x4200,
                                                                0x4400, 0x4500, 0x4600, 0x4700}));
  EXPECT_EQ(tensor_bytes(*file.find_tensor("blk.0.ffn_gate_tid2eid.weight")),
            bytes_of(std::vector<int32_t>{3, 1, 4, 1}));
  // Raw Q8_0 bytes of shape (2, 34) are two rows of one 32-value block each.
  const GgufTensorInfo* q8 = file.find_tensor("blk.0.attn_q_a.weight");
  EXPECT_EQ(q8->type, GgmlType::Q8_0);
  EXPECT_EQ(q8->dims, (std::vector<uint64_t>{32, 2}));
  std::vector<uint8_t> ramp(68);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = uint8_t(i);
  EXPECT_EQ(tensor_bytes(*q8), ramp);
}

TEST(GgufCorpus, ReadsAGgufPySplitSet) {
  const GgufFile file = open_ok("split-00001-of-00002.gguf");
  EXPECT_EQ(file.paths().size(), 2u);
  EXPECT_EQ(*file.get_uint("deepseek4.block_count"), 43u);
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.find_tensor("first")->split, 0u);
  EXPECT_EQ(file.find_tensor("second")->split, 1u);
  EXPECT_EQ(tensor_bytes(*file.find_tensor("first")), bytes_of(std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(tensor_bytes(*file.find_tensor("second")), bytes_of(std::vector<int16_t>{0, 1, 2}));
}

// Re-writes a gguf-py file from what GgufFile read: the layout rules (order, offsets, padding
// after the header and after every tensor) must agree to the byte.
class GgufCorpusRewrite : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufCorpusRewrite, WriterReproducesGgufPyBytes) {
  const GgufFile file = open_ok(GetParam());
  GgufWriterOptions options;
  options.alignment = file.alignment();
  GgufWriter writer(options);
  for (const GgufKeyValue& entry : file.metadata()) writer.set(entry.key, entry.value);
  for (const GgufTensorInfo& info : file.tensors()) {
    ASSERT_TRUE(
        writer.add_tensor(info.name, info.type, info.dims, gguf_bytes_source(tensor_bytes(info)))
            .is_ok());
  }
  const fs::path out = fs::path(V4_BINARY_DIR) / "gguf_test_files" / "rewrite";
  fs::create_directories(out);
  const fs::path path = out / GetParam();
  ASSERT_TRUE(writer.write(path.string()).is_ok());
  EXPECT_EQ(read_bytes(path), read_bytes(kCorpus / GetParam()));
}

INSTANTIATE_TEST_SUITE_P(GgufPyFiles, GgufCorpusRewrite,
                         ::testing::Values("every_type.gguf", "align64.gguf",
                                           "metadata_only.gguf"));

}  // namespace
}  // namespace v4
