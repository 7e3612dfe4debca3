// Fuzzing of KTLS receive (FreeBSD's ktls_check_rx / ktls_decrypt): the
// bytes of an input are the TCP stream a peer sends to a socket with
// TCP_RXTLS_ENABLE. Shared by the libFuzzer target and the GoogleTest
// driver that replays the corpus and deterministic mutations in CI.
//
// Input layout:
//   byte 0  suite: index into ktls_test::RxSuites(), modulo its size
//   byte 1  flags:
//             bits 0-1  arrival: 0 one write; 1 the first 1 KiB one byte
//                       per segment, then the rest; 2 random chunks of
//                       1..1500 bytes; 3 split inside every record header
//             bits 2-3  reads: 0 buffer of 20000 (a whole record);
//                       1 one byte; 2 random 1..300; 3 alternating 7/20000
//             bits 4-5  end: 0 peer shutdown(SHUT_WR) after its data;
//                       1 peer close(); 2 reader shutdown(SHUT_RD) after
//                       some records; 3 reader close() after some records
//             bit 6     enable RX only after data has arrived (queued bytes
//                       become ciphertext)
//             bit 7     record level: no sockets; the stream goes through
//                       ktls_rx_check_header and ktls_rx_decrypt_record the
//                       way ktls_decrypt walks a socket buffer
//   byte 2  seed for the chunk/read sizes and the stop point
//   rest    the stream (at most kMaxStream bytes are used)
//
// Every run is checked against a model built from the test-side record
// crypto (OpenSSL EVP, tests/sys/kern/ktls_test_util): the records that
// decrypt are delivered whole, in order, with their TLS_GET_RECORD cmsg and
// MSG_EOR, none lost or invented; every error a read returns is one the
// stream calls for (EINVAL/EMSGSIZE header errors, EMSGSIZE short records
// and EOF inside a record, EBADMSG authentication failures); a read never
// hangs. The record-level mode compares the exact sequence.
#ifndef UKTLS_TESTS_FUZZ_KTLS_RX_FUZZ_H_
#define UKTLS_TESTS_FUZZ_KTLS_RX_FUZZ_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/sys/kern/ktls_test_util.h"

struct uk_kernel;
struct uk_proc;

namespace ktls_rx_fuzz {

constexpr size_t kMaxStream = 70000;
// The sequence number every session starts at.
constexpr uint64_t kSeq = 0x0000000102030405ull;

// Flag bits (byte 1).
enum : uint8_t {
  kArriveOnce = 0,
  kArriveBytes = 1,
  kArriveChunks = 2,
  kArriveSplitHeaders = 3,
  kReadWhole = 0 << 2,
  kReadByte = 1 << 2,
  kReadRandom = 2 << 2,
  kReadAlternate = 3 << 2,
  kEndShutWr = 0 << 4,
  kEndPeerClose = 1 << 4,
  kEndShutRd = 2 << 4,
  kEndReaderClose = 3 << 4,
  kEnableLate = 1 << 6,
  kRecordLevel = 1 << 7,
};

// The keys of suite i (reproducible, so corpus records stay valid).
const ktls_test::TlsKeys& Keys(size_t suite);
size_t NumSuites();

// One step of what a stream must produce: a record (type, plaintext) or an
// error (errno), and whether the error ends the connection.
struct Event {
  int error = 0;
  bool fatal = false;
  uint8_t type = 0;
  std::vector<uint8_t> data;
};
// What FreeBSD's ktls_decrypt makes of the stream, record by record,
// followed by the end of stream (EMSGSIZE if a record is left incomplete).
std::vector<Event> Model(size_t suite, const uint8_t* stream, size_t len);

std::vector<uint8_t> MakeInput(size_t suite, uint8_t flags, uint8_t seed,
                               const std::vector<uint8_t>& stream);

// Valid streams for every suite (records of 0, 1, 100, 16384 bytes; CBC
// extra padding; TLS 1.3 zero padding; control types) plus a few with
// known errors, as whole inputs with a spread of flags.
std::vector<std::vector<uint8_t>> SeedInputs();

class Harness {
 public:
  Harness();
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Runs one input. Returns "" or what went wrong.
  std::string Run(const uint8_t* data, size_t size);
  // Halts the kernels; "" or what went wrong (uk_halt failed: a leak, a
  // thread that did not stop). Run() boots them again when needed.
  std::string Halt();

 private:
  std::string Boot();
  std::string RunSockets(size_t suite, uint8_t flags, uint8_t seed,
                         const uint8_t* stream, size_t len);
  std::string RunRecords(size_t suite, const uint8_t* stream, size_t len);

  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
  int listener_ = -1;
  struct RecordLevel;  // a kernel and one RX session per suite
  std::unique_ptr<RecordLevel> rl_;
};

}  // namespace ktls_rx_fuzz

#endif  // UKTLS_TESTS_FUZZ_KTLS_RX_FUZZ_H_
