// libFuzzer target for KTLS receive: arbitrary bytes as the TCP stream of a
// TCP_RXTLS_ENABLE socket, or fed record by record to the header parser and
// decrypt (input layout: ktls_rx_fuzz.h). Build and run with clang:
//   bazel build --config=clang --config=fuzz //tests/fuzz:ktls_rx_fuzzer
//   mkdir -p /tmp/ktls-rx-corpus   # new inputs go to the first directory
//   bazel-bin/tests/fuzz/ktls_rx_fuzzer -max_total_time=300 -max_len=40000 \
//       -timeout=30 -detect_leaks=0 /tmp/ktls-rx-corpus tests/fuzz/corpus/ktls_rx
// A failure prints what differed from the model and aborts; copy the
// crash-* file into tests/fuzz/corpus/ktls_rx so ktls_rx_fuzz_test replays it.
// Leaks are checked by the periodic halt below (uk_halt accounts for every
// page, mbuf and thread) and by LSan when ktls_rx_fuzz_test exits under
// --config=asan. LSan scanning this process while the kernels run (after an
// input, or at exit without a halt) has reported, a few times in ~110000
// runs, two 8-byte buffers of the KTLS work queues' socket lists
// (ktls_check_rx's push_back) as unreachable. They are not leaked: with
// the halt at exit below the exit check is clean (23110 runs), so halting
// freed them through their owners. Hence -detect_leaks=0 here.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/ktls_rx_fuzz.h"

namespace {

ktls_rx_fuzz::Harness* harness;
unsigned long runs;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  harness = new ktls_rx_fuzz::Harness();
  // Halt the kernels at exit, before LSan's exit check (registered earlier,
  // so it runs later), so that it sees a quiescent process.
  atexit([] {
    std::string err = harness->Halt();
    if (!err.empty()) fprintf(stderr, "ktls_rx_fuzzer: %s\n", err.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string err = harness->Run(data, size);
  // A fresh kernel now and then: halting checks that every page, mbuf and
  // thread the inputs so far used came back.
  if (err.empty() && ++runs % 2000 == 0) err = harness->Halt();
  if (!err.empty()) {
    fprintf(stderr, "ktls_rx_fuzzer: %s\n", err.c_str());
    abort();
  }
  return 0;
}
