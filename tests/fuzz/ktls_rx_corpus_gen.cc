// Writes the seed inputs of the KTLS receive fuzzer (valid records of every
// suite, and a few with known errors) into a directory:
//   bazel run //tests/fuzz:ktls_rx_corpus_gen -- $PWD/tests/fuzz/corpus/ktls_rx
#include <cstdio>
#include <string>

#include "tests/fuzz/ktls_rx_fuzz.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  auto seeds = ktls_rx_fuzz::SeedInputs();
  for (size_t i = 0; i < seeds.size(); i++) {
    char name[64];
    snprintf(name, sizeof name, "/seed-%03zu", i);
    std::string path = std::string(argv[1]) + name;
    FILE* f = fopen(path.c_str(), "wb");
    if (f == nullptr || fwrite(seeds[i].data(), 1, seeds[i].size(), f) != seeds[i].size()) {
      perror(path.c_str());
      return 1;
    }
    fclose(f);
  }
  printf("%zu seeds\n", seeds.size());
  return 0;
}
