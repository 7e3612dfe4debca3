// libFuzzer target for the ukernd control-request parser: any bytes a peer
// can send on the control socket as one line. Build and run with clang:
//   bazel build --config=clang --config=fuzz //tests/fuzz:ukernd_request_fuzzer
//   mkdir -p /tmp/ukernd-corpus   # new inputs go to the first directory
//   bazel-bin/tests/fuzz/ukernd_request_fuzzer -max_total_time=60 \
//       -dict=tests/fuzz/ukernd_request.dict /tmp/ukernd-corpus tests/fuzz/corpus
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "usr.sbin/ukernd/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  ukernd::Request req;
  ukernd::RequestError err;
  std::string out;
  if (ukernd::parse_request(line, &req, &err)) {
    out = ukernd::to_line(ukernd::make_reply(req.id, req.kernel, ukernd::json::object()));
  } else {
    if (err.error == 0 || err.message.empty()) __builtin_trap();
    out = ukernd::to_line(ukernd::make_error(err.id, err.error, err.message));
  }
  // A reply is one line, whatever the request held.
  if (out.find('\n') != std::string::npos) __builtin_trap();
  return 0;
}
