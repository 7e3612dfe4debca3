// Mutation fuzzing of KTLS receive that runs in every configuration under
// `bazel test` (gcc, ASan, TSan): the regression corpus in
// tests/fuzz/corpus/ktls_rx, then valid record streams of every suite
// mutated where the parser is most exposed (header fields and lengths,
// truncation, replayed and reordered records, stray bytes) under every
// arrival, read and close pattern, each checked against the model of
// ktls_rx_fuzz.h. UKTLS_FUZZ_ITERATIONS raises the number of mutations per
// seed (default 10). The libFuzzer target next to this file explores further.
#include <arpa/inet.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/ktls_rx_fuzz.h"

namespace {

using ktls_rx_fuzz::Event;
using ktls_rx_fuzz::Harness;

int Iterations() {
  const char* e = getenv("UKTLS_FUZZ_ITERATIONS");
  return e != nullptr ? std::max(1, atoi(e)) : 10;
}

std::filesystem::path CorpusDir() {
  const char* srcdir = getenv("TEST_SRCDIR");
  std::filesystem::path base = srcdir != nullptr ? srcdir : ".";
  return base / "uktls" / "tests" / "fuzz" / "corpus" / "ktls_rx";
}

// Offsets of the record headers in a stream, by their length fields.
std::vector<size_t> RecordStarts(const std::vector<uint8_t>& in) {
  std::vector<size_t> v;
  for (size_t off = 3; off + 5 <= in.size();
       off += 5 + ((in[off + 3] << 8) | in[off + 4]))
    v.push_back(off);
  return v;
}

std::vector<uint8_t> Mutate(std::vector<uint8_t> in, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; r++) {
    std::vector<size_t> recs = RecordStarts(in);
    size_t body = in.size() - 3;
    switch (rng() % 8) {
      case 0:  // flip a bit anywhere in the stream
        if (body) in[3 + pick(body)] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1: {  // a hostile header field
        if (recs.empty()) break;
        size_t h = recs[pick(recs.size())];
        static const uint8_t kTypes[] = {0, 20, 21, 22, 23, 24, 0x21, 0xff};
        static const uint8_t kMinors[] = {0, 1, 2, 3, 4, 5, 0xff};
        static const uint16_t kLens[] = {0, 1, 6, 7, 8, 15, 16, 17, 23, 24, 31, 32,
                                         47, 48, 49, 63, 64, 65, 79, 80, 81,
                                         16384, 16384 + 13, 16384 + 21, 16384 + 64,
                                         16384 + 65, 16384 + 100, 32768, 0xffff};
        switch (rng() % 4) {
          case 0: in[h] = kTypes[pick(sizeof kTypes)]; break;
          case 1: in[h + 1] = static_cast<uint8_t>(2 + rng() % 3); break;
          case 2: in[h + 2] = kMinors[pick(sizeof kMinors)]; break;
          case 3: {
            uint16_t l = kLens[pick(sizeof kLens / sizeof kLens[0])];
            in[h + 3] = static_cast<uint8_t>(l >> 8);
            in[h + 4] = static_cast<uint8_t>(l);
            break;
          }
        }
        break;
      }
      case 2:  // truncate
        in.resize(3 + pick(body + 1));
        break;
      case 3: {  // insert stray bytes
        auto b = std::vector<uint8_t>(1 + pick(40));
        for (auto& x : b) x = static_cast<uint8_t>(rng());
        in.insert(in.begin() + 3 + pick(body + 1), b.begin(), b.end());
        break;
      }
      case 4: {  // delete a range
        if (!body) break;
        size_t a = 3 + pick(body);
        in.erase(in.begin() + a, in.begin() + a + pick(std::min<size_t>(64, in.size() - a) + 1));
        break;
      }
      case 5:    // replay a record (its sequence number is wrong the 2nd time)
      case 6: {  // or move one to the end
        if (recs.empty()) break;
        size_t i = pick(recs.size());
        size_t a = recs[i];
        size_t e = i + 1 < recs.size() ? recs[i + 1] : in.size();
        std::vector<uint8_t> rec(in.begin() + a, in.begin() + e);
        if (rng() % 2 == 0) in.erase(in.begin() + a, in.begin() + e);
        in.insert(in.end(), rec.begin(), rec.end());
        break;
      }
      case 7:  // another arrival/read/close pattern
        in[1] = static_cast<uint8_t>(rng());
        in[2] = static_cast<uint8_t>(rng());
        break;
    }
  }
  return in;
}

TEST(KtlsRxFuzz, ModelDecryptsEverySeedRecord) {
  // The oracle must not be vacuous: the valid seeds decrypt in the model.
  size_t records = 0;
  for (const auto& in : ktls_rx_fuzz::SeedInputs()) {
    auto ev = ktls_rx_fuzz::Model(in[0], in.data() + 3, in.size() - 3);
    ASSERT_FALSE(ev.empty());
    for (const Event& e : ev) records += e.error == 0;
  }
  EXPECT_GE(records, ktls_rx_fuzz::NumSuites() * 4 * 7);
}

TEST(KtlsRxFuzz, CorpusReplays) {
  std::vector<std::filesystem::path> files;
  for (const auto& de : std::filesystem::directory_iterator(CorpusDir()))
    files.push_back(de.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), ktls_rx_fuzz::NumSuites()) << CorpusDir();
  Harness h;
  for (const auto& f : files) {
    std::ifstream is(f, std::ios::binary);
    std::vector<uint8_t> in((std::istreambuf_iterator<char>(is)),
                            std::istreambuf_iterator<char>());
    EXPECT_EQ(h.Run(in.data(), in.size()), "") << f.filename();
  }
  EXPECT_EQ(h.Halt(), "");
}

TEST(KtlsRxFuzz, MutatedStreamsOfEverySuite) {
  auto seeds = ktls_rx_fuzz::SeedInputs();
  std::mt19937_64 rng(20261122);
  Harness h;
  const int iters = Iterations();
  int runs = 0;
  for (const auto& seed : seeds) {
    for (int i = 0; i < iters; i++) {
      auto in = Mutate(seed, rng);
      std::string err = h.Run(in.data(), in.size());
      ASSERT_EQ(err, "") << "input (suite, flags, seed, stream) of "
                         << in.size() << " bytes";
      runs++;
    }
  }
  EXPECT_EQ(h.Halt(), "");
  EXPECT_EQ(runs, static_cast<int>(seeds.size()) * iters);
}

}  // namespace
