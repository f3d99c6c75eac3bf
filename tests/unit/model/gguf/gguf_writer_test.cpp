// GgufWriter -> GgufFile round trips: every value type, nested arrays, tensors, alignment, and
// the writer's checks on sources, tensors and metadata. Spec §5.1.
#include "model/gguf/gguf_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "model/gguf/gguf_reader.h"

namespace v4 {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test under the build tree.
fs::path test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) c = c == '/' ? '_' : c;
  const fs::path dir = fs::path(V4_BINARY_DIR) / "gguf_test_files" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(seed + i * 7);
  return out;
}

std::vector<uint8_t> tensor_bytes(const GgufTensorInfo& info) {
  return {info.data, info.data + info.n_bytes};
}

GgufFile open_ok(const fs::path& path) {
  Result<GgufFile> file = GgufFile::open(path.string());
  EXPECT_TRUE(file.is_ok()) << file.message();
  return std::move(file).value();
}

// One value of each of the 13 types at the edges of its range.
std::vector<GgufKeyValue> every_scalar() {
  return {
      {"t.u8", GgufValue::u8(255)},
      {"t.i8", GgufValue::i8(-128)},
      {"t.u16", GgufValue::u16(65535)},
      {"t.i16", GgufValue::i16(-32768)},
      {"t.u32", GgufValue::u32(4294967295u)},
      {"t.i32", GgufValue::i32(std::numeric_limits<int32_t>::min())},
      {"t.f32", GgufValue::f32(-1.5e-7f)},
      {"t.bool_true", GgufValue::boolean(true)},
      {"t.bool_false", GgufValue::boolean(false)},
      {"t.string", GgufValue::string("DeepSeek \xe2\x96\x81 \xef\xbd\x9c")},  // "▁" and "｜"
      {"t.empty_string", GgufValue::string("")},
      {"t.u64", GgufValue::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", GgufValue::i64(std::numeric_limits<int64_t>::min())},
      {"t.f64", GgufValue::f64(3.141592653589793)},
  };
}

std::vector<GgufKeyValue> every_array() {
  using T = GgufValueType;
  const auto strings = [](std::vector<std::string> items) {
    std::vector<GgufValue> out;
    for (auto& s : items) out.push_back(GgufValue::string(std::move(s)));
    return GgufValue::array(T::STRING, std::move(out));
  };
  return {
      {"a.u8", GgufValue::array(T::U8, {GgufValue::u8(0), GgufValue::u8(255)})},
      {"a.i8", GgufValue::array(T::I8, {GgufValue::i8(-1), GgufValue::i8(127)})},
      {"a.u16", GgufValue::array(T::U16, {GgufValue::u16(7)})},
      {"a.i16", GgufValue::array(T::I16, {GgufValue::i16(-7), GgufValue::i16(8)})},
      {"a.u32", GgufValue::array(T::U32, {GgufValue::u32(4), GgufValue::u32(128)})},
      {"a.i32", GgufValue::array(T::I32, {GgufValue::i32(-4), GgufValue::i32(0)})},
      {"a.f32", GgufValue::array(T::F32, {GgufValue::f32(10.0f), GgufValue::f32(0.25f)})},
      {"a.bool", GgufValue::array(T::BOOL, {GgufValue::boolean(true), GgufValue::boolean(false)})},
      {"a.string", strings({"<｜begin▁of▁sentence｜>", "", "Ġthe"})},
      {"a.u64", GgufValue::array(T::U64, {GgufValue::u64(1ull << 40)})},
      {"a.i64", GgufValue::array(T::I64, {GgufValue::i64(-(1ll << 40))})},
      {"a.f64", GgufValue::array(T::F64, {GgufValue::f64(1e-300)})},
      // Empty arrays keep their element type on disk.
      {"a.empty_u32", GgufValue::array(T::U32, {})},
      {"a.empty_string", GgufValue::array(T::STRING, {})},
      {"a.nested", GgufValue::array(T::ARRAY, {strings({"x", "y"}), strings({}),
                                               GgufValue::array(T::I8, {GgufValue::i8(3)})})},
      {"a.nested3",
       GgufValue::array(T::ARRAY, {GgufValue::array(T::ARRAY, {GgufValue::array(T::F64, {})})})},
  };
}

GgufWriterOptions aligned_to(uint64_t alignment) {
  GgufWriterOptions options;
  options.alignment = alignment;
  return options;
}

GgufValue nested_array(uint32_t levels) {
  GgufValue value = GgufValue::array(GgufValueType::U8, {GgufValue::u8(1)});
  for (uint32_t i = 1; i < levels; ++i) value = GgufValue::array(GgufValueType::ARRAY, {value});
  return value;
}

TEST(GgufWriter, RoundTripsEveryScalarType) {
  const fs::path path = test_dir() / "scalars.gguf";
  GgufWriter writer;
  for (const GgufKeyValue& entry : every_scalar()) writer.set(entry.key, entry.value);
  ASSERT_TRUE(writer.write(path.string()).is_ok());

  const GgufFile file = open_ok(path);
  const std::vector<GgufKeyValue> expected = every_scalar();
  ASSERT_EQ(file.metadata().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(file.metadata()[i].key, expected[i].key);
    EXPECT_EQ(file.metadata()[i].value, expected[i].value) << expected[i].key;
  }
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  EXPECT_TRUE(file.tensors().empty());
}

TEST(GgufWriter, RoundTripsArraysOfEveryElementTypeAndNestedArrays) {
  const fs::path path = test_dir() / "arrays.gguf";
  GgufWriter writer;
  for (const GgufKeyValue& entry : every_array()) writer.set(entry.key, entry.value);
  ASSERT_TRUE(writer.write(path.string()).is_ok());

  const GgufFile file = open_ok(path);
  const std::vector<GgufKeyValue> expected = every_array();
  ASSERT_EQ(file.metadata().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(file.metadata()[i].key, expected[i].key);
    EXPECT_EQ(file.metadata()[i].value, expected[i].value) << expected[i].key;
  }
  EXPECT_EQ(file.find("a.empty_string")->element_type, GgufValueType::STRING);
}

TEST(GgufWriter, NestingUpToTheLimitRoundTripsAndDeeperIsRefused) {
  const fs::path dir = test_dir();
  GgufWriter deepest;
  deepest.set("deep", nested_array(kGgufMaxArrayDepth));
  ASSERT_TRUE(deepest.write((dir / "deepest.gguf").string()).is_ok());
  EXPECT_EQ(*open_ok(dir / "deepest.gguf").find("deep"), nested_array(kGgufMaxArrayDepth));

  GgufWriter too_deep;
  too_deep.set("deep", nested_array(kGgufMaxArrayDepth + 1));
  const std::string path = (dir / "too_deep.gguf").string();
  const auto written = too_deep.write(path);
  ASSERT_FALSE(written.is_ok());
  EXPECT_EQ(written.message(), path + ": metadata key 'deep': arrays nest deeper than 16 levels");
  EXPECT_FALSE(fs::exists(path));
}

TEST(GgufWriter, TypedGettersConvertBetweenIntegerWidths) {
  const fs::path path = test_dir() / "getters.gguf";
  GgufWriter writer;
  writer.set("u32", GgufValue::u32(43));
  writer.set("i32", GgufValue::i32(-2));
  writer.set("u64big", GgufValue::u64(std::numeric_limits<uint64_t>::max()));
  writer.set("f32", GgufValue::f32(1.5f));
  writer.set("flag", GgufValue::boolean(true));
  writer.set("name", GgufValue::string("deepseek4"));
  writer.set("ratios",
             GgufValue::array(GgufValueType::I32, {GgufValue::i32(0), GgufValue::i32(4)}));
  writer.set("clamp", GgufValue::array(GgufValueType::F32, {GgufValue::f32(10.0f)}));
  writer.set("tokens", GgufValue::array(GgufValueType::STRING, {GgufValue::string("a")}));
  ASSERT_TRUE(writer.write(path.string()).is_ok());
  const GgufFile file = open_ok(path);
  const std::string p = path.string();

  EXPECT_EQ(*file.get_uint("u32"), 43u);
  EXPECT_EQ(*file.get_int("u32"), 43);
  EXPECT_EQ(*file.get_int("i32"), -2);
  EXPECT_EQ(*file.get_uint("u64big"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*file.get_float("f32"), 1.5);
  EXPECT_TRUE(*file.get_bool("flag"));
  EXPECT_EQ(*file.get_string("name"), "deepseek4");
  EXPECT_EQ(*file.get_int_array("ratios"), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(*file.get_float_array("clamp"), (std::vector<double>{10.0}));
  EXPECT_EQ(*file.get_string_array("tokens"), (std::vector<std::string>{"a"}));

  EXPECT_EQ(file.get_uint("missing").message(), p + ": metadata key 'missing' is missing");
  EXPECT_EQ(file.get_uint("i32").message(), p + ": metadata key 'i32' value -2 is negative");
  EXPECT_EQ(file.get_int("u64big").message(),
            p + ": metadata key 'u64big' value 18446744073709551615 does not fit in an i64");
  EXPECT_EQ(file.get_string("u32").message(),
            p + ": metadata key 'u32' has type U32, expected STRING");
  EXPECT_EQ(file.get_float("u32").message(),
            p + ": metadata key 'u32' has type U32, expected F32 or F64");
  EXPECT_EQ(file.get_string_array("ratios").message(),
            p + ": metadata key 'ratios' has type ARRAY of I32, expected an ARRAY of STRING");
}

TEST(GgufWriter, TensorsRoundTripWithTheirBytesAndAlignedOffsets) {
  const fs::path path = test_dir() / "tensors.gguf";
  struct Spec {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> dims;
    uint64_t n_bytes;
  };
  // n_bytes from ggml's block geometry: Q8_0 is 34 bytes per 32 values, Q4_K 144 per 256.
  const std::vector<Spec> specs = {
      {"token_embd.weight", GgmlType::F32, {3, 2}, 24},
      {"blk.0.attn_q_a.weight", GgmlType::Q8_0, {64, 2}, 4 * 34},
      {"blk.0.ffn_gate_exps.weight", GgmlType::Q4_K, {256, 1, 2}, 2 * 144},
      {"output_norm.weight", GgmlType::BF16, {5}, 10},
      {"blk.0.hash", GgmlType::I32, {1, 1, 1, 7}, 28},
  };
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("deepseek4"));
  for (size_t i = 0; i < specs.size(); ++i) {
    ASSERT_TRUE(writer
                    .add_tensor(specs[i].name, specs[i].type, specs[i].dims,
                                gguf_bytes_source(pattern(specs[i].n_bytes, uint8_t(i))))
                    .is_ok());
  }
  ASSERT_TRUE(writer.write(path.string()).is_ok());

  const GgufFile file = open_ok(path);
  ASSERT_EQ(file.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const GgufTensorInfo* info = file.find_tensor(specs[i].name);
    ASSERT_NE(info, nullptr) << specs[i].name;
    EXPECT_EQ(info->type, specs[i].type);
    EXPECT_EQ(info->dims, specs[i].dims);
    EXPECT_EQ(info->n_bytes, specs[i].n_bytes);
    EXPECT_EQ(info->file_offset % 32, 0u);
    EXPECT_EQ(info->split, 0u);
    EXPECT_EQ(tensor_bytes(*info), pattern(specs[i].n_bytes, uint8_t(i)));
  }
  EXPECT_EQ(file.find_tensor("blk.0.ffn_gate_exps.weight")->rows(), 2u);
  EXPECT_EQ(file.find_tensor("absent"), nullptr);
  EXPECT_EQ(file.file_bytes(), fs::file_size(path));
}

class GgufWriterAlignment : public ::testing::TestWithParam<uint64_t> {};

TEST_P(GgufWriterAlignment, DataIsAlignedAndAlignmentKeyWrittenOnlyWhenNotDefault) {
  const uint64_t alignment = GetParam();
  const fs::path path = test_dir() / "aligned.gguf";
  GgufWriter writer(aligned_to(alignment));
  writer.set("general.name", GgufValue::string("x"));
  ASSERT_TRUE(writer.add_tensor("a", GgmlType::F16, {3}, gguf_bytes_source(pattern(6, 1))).is_ok());
  ASSERT_TRUE(
      writer.add_tensor("b", GgmlType::F32, {5}, gguf_bytes_source(pattern(20, 2))).is_ok());
  ASSERT_TRUE(writer.write(path.string()).is_ok());

  const GgufFile file = open_ok(path);
  EXPECT_EQ(file.alignment(), alignment);
  const GgufValue* key = file.find("general.alignment");
  if (alignment == 32) {
    EXPECT_EQ(key, nullptr);
  } else {
    ASSERT_NE(key, nullptr);
    EXPECT_EQ(*key, GgufValue::u32(static_cast<uint32_t>(alignment)));
  }
  for (const GgufTensorInfo& info : file.tensors()) EXPECT_EQ(info.file_offset % alignment, 0u);
  EXPECT_EQ(tensor_bytes(*file.find_tensor("a")), pattern(6, 1));
  EXPECT_EQ(tensor_bytes(*file.find_tensor("b")), pattern(20, 2));
  // Each tensor is padded to the alignment, the last one included (as ggml and gguf-py do).
  const GgufTensorInfo& b = *file.find_tensor("b");
  EXPECT_EQ(fs::file_size(path), (b.file_offset + 20 + alignment - 1) / alignment * alignment);
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufWriterAlignment,
                         ::testing::Values(1u, 2u, 8u, 32u, 64u, 4096u));

TEST(GgufWriter, RefusesAlignmentThatIsNotAPowerOfTwo) {
  const fs::path dir = test_dir();
  for (uint64_t alignment : {0ull, 3ull, 48ull, 1ull << 33}) {
    const std::string path = (dir / "bad.gguf").string();
    GgufWriter writer(aligned_to(alignment));
    EXPECT_EQ(writer.write(path).message(), path + ": alignment " + std::to_string(alignment) +
                                                " is not a power of two that fits a u32");
    EXPECT_FALSE(fs::exists(path));
  }
}

TEST(GgufWriter, RefusesAGeneralAlignmentKeyThatContradictsTheOptions) {
  const std::string path = (test_dir() / "conflict.gguf").string();
  GgufWriter writer(aligned_to(64));
  writer.set("general.alignment", GgufValue::u32(32));
  EXPECT_EQ(writer.write(path).message(),
            path + ": metadata key 'general.alignment' must be the U32 64 of the writer options");
}

TEST(GgufWriter, SettingAnExistingKeyReplacesItInPlace) {
  const fs::path path = test_dir() / "replace.gguf";
  GgufWriter writer;
  writer.set("a", GgufValue::u32(1));
  writer.set("b", GgufValue::u32(2));
  writer.set("a", GgufValue::string("one"));
  ASSERT_TRUE(writer.write(path.string()).is_ok());
  const GgufFile file = open_ok(path);
  ASSERT_EQ(file.metadata().size(), 2u);
  EXPECT_EQ(file.metadata()[0].key, "a");
  EXPECT_EQ(file.metadata()[0].value, GgufValue::string("one"));
}

TEST(GgufWriter, RefusesValuesThatDoNotMatchTheirType) {
  const std::string path = (test_dir() / "bad_value.gguf").string();
  GgufValue wide = GgufValue::u8(1);
  wide.value = uint64_t{300};
  GgufWriter writer;
  writer.set("k", wide);
  EXPECT_EQ(writer.write(path).message(), path + ": metadata key 'k': value 300 does not fit U8");

  GgufWriter mixed;
  mixed.set("m", GgufValue::array(GgufValueType::U32, {GgufValue::u32(1), GgufValue::i32(2)}));
  EXPECT_EQ(mixed.write(path).message(),
            path + ": metadata key 'm': array element 1 has type I32, expected U32");

  GgufValue wrong_alternative = GgufValue::string("x");
  wrong_alternative.type = GgufValueType::F32;
  GgufWriter wrong;
  wrong.set("w", wrong_alternative);
  EXPECT_EQ(wrong.write(path).message(),
            path + ": metadata key 'w': value held does not match its type F32");
}

TEST(GgufWriter, AddTensorRefusesBadDeclarations) {
  GgufWriter writer;
  const auto source = gguf_bytes_source({});
  ASSERT_TRUE(
      writer.add_tensor("w", GgmlType::F32, {4}, gguf_bytes_source(pattern(16, 0))).is_ok());
  EXPECT_EQ(writer.add_tensor("w", GgmlType::F32, {4}, source).message(),
            "tensor 'w' is already declared");
  EXPECT_EQ(writer.add_tensor("q", GgmlType::Q8_0, {33}, source).message(),
            "tensor 'q': row length 33 is not a multiple of the block size 32 of Q8_0");
  EXPECT_EQ(writer.add_tensor("z", GgmlType::F32, {4, 0}, source).message(),
            "tensor 'z': dimension 1 is 0");
  EXPECT_EQ(writer.add_tensor("e", GgmlType::F32, {}, source).message(),
            "tensor 'e': has 0 dimensions, expected 1..4");
  EXPECT_EQ(writer.add_tensor("f", GgmlType::F32, {1, 1, 1, 1, 1}, source).message(),
            "tensor 'f': has 5 dimensions, expected 1..4");
  EXPECT_EQ(writer.add_tensor("t", static_cast<GgmlType>(4), {1}, source).message(),
            "tensor 't': unknown ggml type 4");
  EXPECT_EQ(writer.add_tensor("o", GgmlType::F32, {1ull << 32, 1ull << 32}, source).message(),
            "tensor 'o': element count overflows u64");
  EXPECT_EQ(writer.add_tensor("b", GgmlType::F32, {1ull << 62}, source).message(),
            "tensor 'b': byte size overflows u64");
  EXPECT_EQ(writer.add_tensor("n", GgmlType::F32, {1}, nullptr).message(),
            "tensor 'n' has no source");
}

// A source producing a tensor in small pieces, as a converter streaming from safetensors does.
GgufTensorSource chunked_source(std::vector<uint8_t> bytes, size_t chunk) {
  return [bytes = std::move(bytes), chunk](GgufByteSink& sink) -> Status {
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      const size_t n = std::min(chunk, bytes.size() - at);
      if (Status s = sink.write({bytes.data() + at, n}); !s) return s;
    }
    return Status::ok();
  };
}

TEST(GgufWriter, StreamsChunkedSourcesAndReportsProgressAfterEachTensor) {
  const fs::path path = test_dir() / "streamed.gguf";
  std::vector<GgufWriteProgress> seen;
  std::vector<std::string> names;
  GgufWriterOptions options;
  options.progress = [&](const GgufWriteProgress& p) {
    seen.push_back(p);
    names.emplace_back(p.current_tensor);
  };
  GgufWriter writer(options);
  ASSERT_TRUE(
      writer.add_tensor("a", GgmlType::F32, {1000}, chunked_source(pattern(4000, 3), 7)).is_ok());
  ASSERT_TRUE(
      writer.add_tensor("b", GgmlType::I8, {10}, chunked_source(pattern(10, 4), 1)).is_ok());
  ASSERT_TRUE(writer.write(path.string()).is_ok());

  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].bytes_written, 4000u);
  EXPECT_EQ(seen[1].bytes_written, 4010u);
  EXPECT_EQ(seen[1].bytes_total, 4010u);
  EXPECT_EQ(seen[0].tensors_written, 1u);
  EXPECT_EQ(seen[1].tensors_total, 2u);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
  const GgufFile file = open_ok(path);
  EXPECT_EQ(tensor_bytes(*file.find_tensor("a")), pattern(4000, 3));
  EXPECT_EQ(tensor_bytes(*file.find_tensor("b")), pattern(10, 4));
}

// Each failing write must leave neither the target nor its temporary file behind.
void expect_no_files(const fs::path& dir) {
  EXPECT_TRUE(fs::is_empty(dir)) << "left behind: " << fs::directory_iterator(dir)->path();
}

TEST(GgufWriter, ShortSourceFailsAndLeavesNoFile) {
  const fs::path dir = test_dir();
  const std::string path = (dir / "short.gguf").string();
  GgufWriter writer;
  ASSERT_TRUE(
      writer.add_tensor("w", GgmlType::F32, {4}, gguf_bytes_source(pattern(12, 0))).is_ok());
  EXPECT_EQ(writer.write(path).message(),
            path + ": tensor 'w': source produced 12 bytes, expected 16");
  expect_no_files(dir);
}

TEST(GgufWriter, LongSourceFailsAndLeavesNoFile) {
  const fs::path dir = test_dir();
  const std::string path = (dir / "long.gguf").string();
  GgufWriter writer;
  ASSERT_TRUE(
      writer.add_tensor("w", GgmlType::F32, {4}, chunked_source(pattern(20, 0), 8)).is_ok());
  EXPECT_EQ(writer.write(path).message(),
            path + ": tensor 'w': source produced more than the declared 16 bytes");
  expect_no_files(dir);
}

TEST(GgufWriter, SourceErrorIsReportedEvenWhenTheSourceIgnoresTheSink) {
  const fs::path dir = test_dir();
  const std::string path = (dir / "ignored.gguf").string();
  GgufWriter writer;
  const auto careless = [](GgufByteSink& sink) {
    const std::vector<uint8_t> bytes(32, 1);
    (void)sink.write(bytes);  // exceeds the 16 declared bytes; the source ignores the refusal
    return Status::ok();
  };
  ASSERT_TRUE(writer.add_tensor("w", GgmlType::F32, {4}, careless).is_ok());
  EXPECT_EQ(writer.write(path).message(),
            path + ": tensor 'w': source produced more than the declared 16 bytes");
  expect_no_files(dir);
}

TEST(GgufWriter, FailingSourceLeavesAnExistingFileUntouched) {
  const fs::path dir = test_dir();
  const std::string path = (dir / "model.gguf").string();
  GgufWriter good;
  good.set("version", GgufValue::u32(1));
  ASSERT_TRUE(good.write(path).is_ok());
  const auto before = fs::file_size(path);

  GgufWriter bad;
  bad.set("version", GgufValue::u32(2));
  const auto failing = [](GgufByteSink&) { return Status::error("safetensors read failed"); };
  ASSERT_TRUE(bad.add_tensor("w", GgmlType::F32, {4}, failing).is_ok());
  EXPECT_EQ(bad.write(path).message(), path + ": tensor 'w': safetensors read failed");
  EXPECT_EQ(fs::file_size(path), before);
  EXPECT_EQ(*open_ok(path).get_uint("version"), 1u);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(GgufWriter, WritesTheExactV3LayoutOfTheSpec) {
  // Spec §5.1, byte by byte: header, one u32 entry, one F32 tensor [2], padding, data.
  const fs::path path = test_dir() / "layout.gguf";
  GgufWriter writer;
  writer.set("k", GgufValue::u32(7));
  ASSERT_TRUE(
      writer.add_tensor("w", GgmlType::F32, {2}, gguf_bytes_source({1, 2, 3, 4, 5, 6, 7, 8}))
          .is_ok());
  ASSERT_TRUE(writer.write(path.string()).is_ok());
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
  std::vector<uint8_t> expected = {
      'G', 'G', 'U', 'F', 3, 0, 0, 0,                // magic, version 3
      1,   0,   0,   0,   0, 0, 0, 0,                // tensor count
      1,   0,   0,   0,   0, 0, 0, 0,                // metadata count
      1,   0,   0,   0,   0, 0, 0, 0, 'k',           // key
      4,   0,   0,   0,   7, 0, 0, 0,                // U32 7
      1,   0,   0,   0,   0, 0, 0, 0, 'w',           // tensor name
      1,   0,   0,   0,   2, 0, 0, 0, 0,   0, 0, 0,  // n_dims 1, ne0 2
      0,   0,   0,   0,   0, 0, 0, 0, 0,   0, 0, 0,  // F32, offset 0
  };
  expected.resize(96, 0);  // the header ends at byte 74; data starts at the next multiple of 32
  for (uint8_t b = 1; b <= 8; ++b) expected.push_back(b);
  expected.resize(128, 0);  // the tensor is padded to the alignment too
  EXPECT_EQ(bytes, expected);
}

}  // namespace
}  // namespace v4
