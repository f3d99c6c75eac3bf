// Split GGUF sets: the writer's parts (sizes, names, split keys) and the reader's merging and
// validation of "<stem>-0000i-of-0000N.gguf" sets. Spec §5.1, llama.cpp gguf-split convention.
#include "model/gguf/gguf_split.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "model/gguf/gguf_reader.h"
#include "model/gguf/gguf_writer.h"

namespace v4 {
namespace {

namespace fs = std::filesystem;

fs::path test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(V4_BINARY_DIR) / "gguf_test_files" /
                       (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(seed * 31 + i);
  return out;
}

GgufWriterOptions split_at(uint64_t max_split_bytes, uint64_t alignment = 32) {
  GgufWriterOptions options;
  options.max_split_bytes = max_split_bytes;
  options.alignment = alignment;
  return options;
}

// n tensors "t0".."t<n-1>", each F32 [250] (1000 bytes) filled with pattern(1000, i).
void add_tensors(GgufWriter& writer, int n) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(writer
                    .add_tensor("t" + std::to_string(i), GgmlType::F32, {250},
                                gguf_bytes_source(pattern(1000, uint8_t(i))))
                    .is_ok());
  }
}

GgufContainer parse_part(const std::string& path, std::vector<uint8_t>& storage) {
  std::ifstream in(path, std::ios::binary);
  storage.assign(std::istreambuf_iterator<char>(in), {});
  Result<GgufContainer> parsed = parse_gguf(path, storage);
  EXPECT_TRUE(parsed.is_ok()) << parsed.message();
  return std::move(parsed).value();
}

TEST(GgufSplitName, FormatsAndRecognisesPartNames) {
  EXPECT_EQ(gguf_split_path("/m/model", 2, 13), "/m/model-00002-of-00013.gguf");
  const auto name = parse_gguf_split_path("/m/model-00002-of-00013.gguf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "/m/model");
  EXPECT_EQ(name->part, 2u);
  EXPECT_EQ(name->count, 13u);
  EXPECT_FALSE(parse_gguf_split_path("/m/model.gguf"));
  EXPECT_FALSE(parse_gguf_split_path("/m/model-00000-of-00002.gguf"));  // parts count from 1
  EXPECT_FALSE(parse_gguf_split_path("/m/model-00003-of-00002.gguf"));
  EXPECT_FALSE(parse_gguf_split_path("/m/model-0001-of-00002.gguf"));
  EXPECT_EQ(gguf_path_stem("/m/model.gguf"), "/m/model");
}

TEST(GgufSplitWriter, WritesPartsWithinTheLimitAndTheReaderMergesThem) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(3000));
  writer.set("general.name", GgufValue::string("split"));
  add_tensors(writer, 6);
  Result<std::vector<std::string>> paths = writer.write((dir / "model.gguf").string());
  ASSERT_TRUE(paths.is_ok()) << paths.message();

  // Worked by hand: the first header is 24 + 37 (general.name) + 82 (split keys) bytes, each
  // info 34 and each tensor 1024 padded; a third tensor would take either part past 3000.
  const std::vector<std::string> expected_paths = {(dir / "model-00001-of-00003.gguf").string(),
                                                   (dir / "model-00002-of-00003.gguf").string(),
                                                   (dir / "model-00003-of-00003.gguf").string()};
  EXPECT_EQ(*paths, expected_paths);
  EXPECT_EQ(fs::file_size(expected_paths[0]), 224u + 2048u);
  EXPECT_EQ(fs::file_size(expected_paths[1]), 192u + 2048u);
  EXPECT_EQ(fs::file_size(expected_paths[2]), 192u + 2048u);

  Result<GgufFile> file = GgufFile::open(expected_paths[0]);
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->paths(), expected_paths);
  ASSERT_EQ(file->tensors().size(), 6u);
  for (int i = 0; i < 6; ++i) {
    const GgufTensorInfo* info = file->find_tensor("t" + std::to_string(i));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->split, uint32_t(i / 2));
    EXPECT_EQ(std::vector<uint8_t>(info->data, info->data + info->n_bytes),
              pattern(1000, uint8_t(i)));
  }
  EXPECT_EQ(*file->get_string("general.name"), "split");
  EXPECT_EQ(file->file_bytes(), 2272u + 2240u + 2240u);

  // As gguf-split does: split.no / split.count are U16, split.tensors.count I32, and only the
  // first part carries the model's metadata.
  std::vector<uint8_t> storage;
  const GgufContainer second = parse_part(expected_paths[1], storage);
  ASSERT_EQ(second.metadata.size(), 3u);
  EXPECT_EQ(second.metadata[0].key, "split.no");
  EXPECT_EQ(second.metadata[0].value, GgufValue::u16(1));
  EXPECT_EQ(second.metadata[1].key, "split.count");
  EXPECT_EQ(second.metadata[1].value, GgufValue::u16(3));
  EXPECT_EQ(second.metadata[2].key, "split.tensors.count");
  EXPECT_EQ(second.metadata[2].value, GgufValue::i32(6));
  EXPECT_EQ(*file->find("split.no"), GgufValue::u16(0));
}

TEST(GgufSplitWriter, WritesOnePlainFileWhenEverythingFits) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(1 << 20));
  add_tensors(writer, 3);
  const std::string path = (dir / "model.gguf").string();
  Result<std::vector<std::string>> paths = writer.write(path);
  ASSERT_TRUE(paths.is_ok()) << paths.message();
  EXPECT_EQ(*paths, std::vector<std::string>{path});
  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->find("split.count"), nullptr);
  EXPECT_EQ(file->tensors().size(), 3u);
}

TEST(GgufSplitWriter, GivesATensorLargerThanTheLimitAPartOfItsOwn) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(500));
  add_tensors(writer, 3);
  Result<std::vector<std::string>> paths = writer.write((dir / "big.gguf").string());
  ASSERT_TRUE(paths.is_ok()) << paths.message();
  ASSERT_EQ(paths->size(), 3u);
  Result<GgufFile> file = GgufFile::open(paths->front());
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->find_tensor("t2")->split, 2u);
}

TEST(GgufSplitWriter, EveryPartCarriesANonDefaultAlignment) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(2500, 64));
  add_tensors(writer, 4);
  Result<std::vector<std::string>> paths = writer.write((dir / "a64.gguf").string());
  ASSERT_TRUE(paths.is_ok()) << paths.message();
  ASSERT_EQ(paths->size(), 2u);
  for (const std::string& path : *paths) {
    std::vector<uint8_t> storage;
    const GgufContainer part = parse_part(path, storage);
    EXPECT_EQ(part.alignment, 64u) << path;
    for (const GgufTensorInfo& info : part.tensors) EXPECT_EQ(info.file_offset % 64, 0u);
  }
  Result<GgufFile> file = GgufFile::open(paths->front());
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->tensors().size(), 4u);
}

TEST(GgufSplitWriter, RefusesSplitKeysFromTheCallerWhenSplitting) {
  const std::string path = (test_dir() / "m.gguf").string();
  GgufWriter writer(split_at(1000));
  writer.set("split.count", GgufValue::u16(9));
  EXPECT_EQ(writer.write(path).message(),
            path + ": metadata key 'split.count' is written by the writer when splitting");
}

TEST(GgufSplitWriter, FailedSplitWriteLeavesNoPartBehind) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(1500));
  add_tensors(writer, 2);
  const auto failing = [](GgufByteSink&) { return Status::error("disk full"); };
  ASSERT_TRUE(writer.add_tensor("last", GgmlType::F32, {4}, failing).is_ok());
  const std::string second = (dir / "m-00002-of-00002.gguf").string();
  EXPECT_EQ(writer.write((dir / "m.gguf").string()).message(),
            second + ": tensor 'last': disk full");
  EXPECT_TRUE(fs::is_empty(dir));
}

// ---- reading malformed split sets ------------------------------------------------------------

struct PartSpec {
  std::vector<GgufKeyValue> metadata;
  std::vector<std::string> tensors;  // F32 [4] each
};

// Writes one part as an ordinary file with exactly the given metadata, in order.
void write_part(const std::string& path, const PartSpec& spec) {
  GgufWriter writer;
  for (const GgufKeyValue& entry : spec.metadata) writer.set(entry.key, entry.value);
  for (const std::string& name : spec.tensors) {
    ASSERT_TRUE(
        writer.add_tensor(name, GgmlType::F32, {4}, gguf_bytes_source(pattern(16, 1))).is_ok());
  }
  ASSERT_TRUE(writer.write(path).is_ok());
}

// Value offsets below: header 24; "split.no" entry 22 bytes (value at 44), "split.count" 25
// (value at 69 after split.no), "split.tensors.count" 35.
std::vector<GgufKeyValue> split_keys(uint16_t no, uint16_t count) {
  return {{"split.no", GgufValue::u16(no)}, {"split.count", GgufValue::u16(count)}};
}

TEST(GgufSplitReader, MissingPart) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(1500));
  writer.set("general.name", GgufValue::string("split"));
  add_tensors(writer, 3);
  Result<std::vector<std::string>> paths = writer.write((dir / "m.gguf").string());
  ASSERT_TRUE(paths.is_ok());
  ASSERT_EQ(paths->size(), 3u);
  fs::remove((*paths)[2]);
  // split.count's value: 24 + 37 (general.name) + 22 (split.no) + 19 (key) + 4 (type) = 106.
  EXPECT_EQ(GgufFile::open((*paths)[0]).message(),
            (*paths)[0] + ": split.count is 3 but part " + (*paths)[2] + " is missing at byte 106");
}

TEST(GgufSplitReader, WrongSplitNo) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  const std::string p2 = (dir / "m-00002-of-00002.gguf").string();
  write_part(p1, {split_keys(0, 2), {"a"}});
  write_part(p2, {split_keys(0, 2), {"b"}});
  EXPECT_EQ(GgufFile::open(p1).message(),
            p2 + ": split.no is 0, expected 1 (the file name says part 2 of 2) at byte 44");
}

TEST(GgufSplitReader, SplitCountDisagreesWithTheName) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  const std::string p2 = (dir / "m-00002-of-00002.gguf").string();
  write_part(p1, {split_keys(0, 2), {"a"}});
  write_part(p2, {split_keys(1, 3), {"b"}});
  EXPECT_EQ(GgufFile::open(p1).message(),
            p2 + ": split.count is 3, expected 2 (the file name says part 2 of 2) at byte 69");
}

TEST(GgufSplitReader, SplitCountOfTheWrongType) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  write_part(p1, {{{"split.no", GgufValue::u16(0)}, {"split.count", GgufValue::string("2")}}, {}});
  // The STRING value follows its 19-byte key and type: 24 + 22 + 23 = 69.
  EXPECT_EQ(GgufFile::open(p1).message(),
            p1 + ": split.count has type STRING, expected a non-negative integer at byte 69");
}

TEST(GgufSplitReader, SplitKeysMissingFromAPartName) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  write_part(p1, {{}, {"a"}});
  EXPECT_EQ(GgufFile::open(p1).message(),
            p1 + ": split.count is missing (the file name says part 1 of 2) at byte 24");
}

TEST(GgufSplitReader, DuplicateTensorAcrossParts) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  const std::string p2 = (dir / "m-00002-of-00002.gguf").string();
  write_part(p1, {split_keys(0, 2), {"a", "w"}});
  write_part(p2, {split_keys(1, 2), {"w"}});
  // The tensor info follows split.no and split.count: 24 + 22 + 25 = 71.
  EXPECT_EQ(GgufFile::open(p1).message(),
            p2 + ": duplicate tensor name 'w' (also in " + p1 + ") at byte 71");
}

TEST(GgufSplitReader, TensorsCountDisagreesWithTheParts) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  const std::string p2 = (dir / "m-00002-of-00002.gguf").string();
  std::vector<GgufKeyValue> first = split_keys(0, 2);
  first.push_back({"split.tensors.count", GgufValue::i32(5)});
  write_part(p1, {first, {"a"}});
  write_part(p2, {split_keys(1, 2), {"b"}});
  // 24 + 22 + 25 + 27 (key) + 4 (type) = 102.
  EXPECT_EQ(GgufFile::open(p1).message(),
            p1 + ": split.tensors.count is 5 but the 2 parts hold 2 tensors at byte 102");
}

TEST(GgufSplitReader, MalformedLaterPartIsNamed) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  const std::string p2 = (dir / "m-00002-of-00002.gguf").string();
  write_part(p1, {split_keys(0, 2), {"a"}});
  std::ofstream(p2, std::ios::binary).write("GGUF\x01\0\0\0", 8);
  EXPECT_EQ(GgufFile::open(p1).message(),
            p2 + ": unsupported version 1 (expected 2 or 3) at byte 4");
}

TEST(GgufSplitReader, OpeningALaterPartPointsToTheFirst) {
  const fs::path dir = test_dir();
  const std::string p1 = (dir / "m-00001-of-00002.gguf").string();
  const std::string p2 = (dir / "m-00002-of-00002.gguf").string();
  write_part(p1, {split_keys(0, 2), {"a"}});
  write_part(p2, {split_keys(1, 2), {"b"}});
  EXPECT_EQ(GgufFile::open(p2).message(), p2 + ": is part 2 of a split set; open " + p1);
}

TEST(GgufSplitReader, SplitCountInAFileNotNamedAsAPart) {
  const std::string path = (test_dir() / "model.gguf").string();
  write_part(path, {{{"split.count", GgufValue::u16(2)}}, {"a"}});
  EXPECT_EQ(GgufFile::open(path).message(), path +
                                                ": split.count is 2 but the file is not named "
                                                "<stem>-00001-of-<count>.gguf at byte 47");
}

TEST(GgufSplitReader, SinglePartNameWithoutSplitKeysIsAnOrdinaryFile) {
  const std::string path = (test_dir() / "m-00001-of-00001.gguf").string();
  write_part(path, {{}, {"a"}});
  Result<GgufFile> file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->tensors().size(), 1u);
}

// ---- "<stem>.gguf-0000i-of-0000N": shards or byte chunks -------------------------------------

TEST(GgufSplitName, RecognisesTheNameAfterTheExtension) {
  const auto name = parse_gguf_split_path("/m/model.gguf-00002-of-00011");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "/m/model.gguf");
  EXPECT_EQ(name->part, 2u);
  EXPECT_EQ(name->count, 11u);
  EXPECT_EQ(name->style, GgufSplitStyle::kAfterExtension);
  EXPECT_EQ(gguf_split_path(name->stem, 3, 11, name->style), "/m/model.gguf-00003-of-00011");
  EXPECT_FALSE(parse_gguf_split_path("/m/model-00002-of-00011"));  // no .gguf anywhere
  EXPECT_FALSE(parse_gguf_split_path("/m/model.gguf-00012-of-00011"));
}

// gguf-split shards renamed to the other convention open as the same split set.
TEST(GgufSplitReader, OpensShardsNamedAfterTheExtension) {
  const fs::path dir = test_dir();
  GgufWriter writer(split_at(3000));
  writer.set("general.name", GgufValue::string("split"));
  add_tensors(writer, 6);
  Result<std::vector<std::string>> paths = writer.write((dir / "model.gguf").string());
  ASSERT_TRUE(paths.is_ok()) << paths.message();
  std::vector<std::string> renamed;
  for (uint32_t k = 1; k <= paths->size(); ++k) {
    renamed.push_back(
        gguf_split_path((dir / "model.gguf").string(), k, 3, GgufSplitStyle::kAfterExtension));
    fs::rename((*paths)[k - 1], renamed.back());
  }
  Result<GgufFile> file = GgufFile::open(renamed.front());
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->layout(), GgufLayout::kSplitSet);
  EXPECT_EQ(file->paths(), renamed);
  ASSERT_EQ(file->tensors().size(), 6u);
  EXPECT_EQ(file->find_tensor("t5")->split, 2u);
  EXPECT_FALSE(GgufFile::open(renamed[1]).is_ok());  // "open part 1"
}

// One GGUF cut into plain byte chunks (as `split -b` does) maps back into one image, tensors
// straddling a chunk boundary included.
TEST(GgufSplitReader, MapsByteChunksOfOneFileAsOneFile) {
  const fs::path dir = test_dir();
  GgufWriter writer;
  writer.set("general.name", GgufValue::string("chunks"));
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(writer
                    .add_tensor("t" + std::to_string(i), GgmlType::F32, {1000},
                                gguf_bytes_source(pattern(4000, uint8_t(i))))
                    .is_ok());
  }
  const std::string whole = (dir / "whole.gguf").string();
  ASSERT_TRUE(writer.write(whole).is_ok());
  std::ifstream in(whole, std::ios::binary);
  const std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
  const size_t chunk = static_cast<size_t>(sysconf(_SC_PAGESIZE)) * 4;
  const uint32_t count = static_cast<uint32_t>((bytes.size() + chunk - 1) / chunk);
  ASSERT_GE(count, 3u);
  const std::string stem = (dir / "model.gguf").string();
  for (uint32_t k = 0; k < count; ++k) {
    std::ofstream out(gguf_split_path(stem, k + 1, count, GgufSplitStyle::kAfterExtension),
                      std::ios::binary);
    const size_t begin = k * chunk, end = std::min(bytes.size(), begin + chunk);
    out.write(bytes.data() + begin, static_cast<std::streamsize>(end - begin));
  }
  const std::string first = gguf_split_path(stem, 1, count, GgufSplitStyle::kAfterExtension);
  Result<GgufFile> file = GgufFile::open(first);
  ASSERT_TRUE(file.is_ok()) << file.message();
  EXPECT_EQ(file->layout(), GgufLayout::kByteChunks);
  EXPECT_EQ(file->paths().size(), count);
  EXPECT_EQ(file->file_bytes(), bytes.size());
  EXPECT_EQ(*file->get_string("general.name"), "chunks");
  ASSERT_EQ(file->tensors().size(), 12u);
  for (int i = 0; i < 12; ++i) {
    const GgufTensorInfo* info = file->find_tensor("t" + std::to_string(i));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(std::vector<uint8_t>(info->data, info->data + info->n_bytes),
              pattern(4000, uint8_t(i)));
  }
  // A later chunk names the first; a chunk that is not whole pages is refused with the fix.
  Result<GgufFile> later =
      GgufFile::open(gguf_split_path(stem, 2, count, GgufSplitStyle::kAfterExtension));
  ASSERT_FALSE(later.is_ok());
  EXPECT_NE(later.message().find("open " + first), std::string::npos) << later.message();
  fs::resize_file(first, chunk - 1);
  Result<GgufFile> ragged = GgufFile::open(first);
  ASSERT_FALSE(ragged.is_ok());
  EXPECT_NE(ragged.message().find("not a multiple of the page size"), std::string::npos)
      << ragged.message();
}

}  // namespace
}  // namespace v4
