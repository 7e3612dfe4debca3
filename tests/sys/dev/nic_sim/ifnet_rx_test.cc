// KTLS receive in IFNET mode: two kernels joined by simulated NICs, the
// sender in software TX mode, the receiver with rxtls on its NIC and
// kern.ipc.tls.ifnet.permitted=1, for AES-128/256-GCM with TLS 1.2 and
// 1.3. The plaintext read (one record per recvmsg, with its TLS_GET_RECORD
// cmsg) must hash to what was sent, and the counters must show who
// decrypted what: the NIC on a clean wire; the NIC, the recrypt path and
// resyncs under loss and reordering; software after rxtls goes away.
//
// UKTLS_IFNET_RX_MB sets the transfer size (default 4; 64 for the full run).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "tests/sys/dev/nic_sim/lab.h"
#include "tests/sys/kern/ktls_test_util.h"

namespace {

using ktls_test::Suite;
using ktls_test::TlsKeys;

size_t transfer_size() { return uk::lab::env_mib("UKTLS_IFNET_RX_MB", 4); }

using uk::lab::addr;
using uk::lab::sha256;

// Sender a (10.0.0.1) and receiver b (10.0.0.2) on one wire; b's NIC has
// rxtls on unless told otherwise.
struct Rig : uk::lab::Pair {
  Rig(const std::string& wire, int mtu, bool rxtls = true, bool permitted = true,
      const std::string& b_caps = "")
      : Pair(wire, {.a_name = "tx",
                    .b_name = "rx",
                    .a_opts = "mtu " + std::to_string(mtu),
                    .b_opts = "mtu " + std::to_string(mtu) + (rxtls ? " rxtls" : "") +
                              (b_caps.empty() ? "" : " " + b_caps)}) {
    b.set_uint("kern.ipc.tls.ifnet.permitted", permitted ? 1 : 0);
  }
};

struct Result {
  bool ok = false;
  size_t got = 0;
  uint64_t records = 0;  // records read (one TLS_GET_RECORD each)
  int rx_mode = -1;      // TCP_RXTLS_MODE after enable
  int rx_mode_end = -1;  // and at the end
};

// Sends `bytes` of seeded data from a to b in random-sized writes (so the
// records vary from 1 byte to 16 KiB and frames hold several headers),
// with SW TX on a and RX TLS on b, both with the same keys. on_progress is
// called on the receiving thread after each record.
Result transfer(Rig& r, const Suite& s, size_t bytes,
                const std::function<void(size_t)>& on_progress = nullptr) {
  Result res;
  std::vector<uint8_t> data(bytes);
  std::mt19937_64 rng(bytes ^ s.keylen ^ (s.minor << 8));
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);

  uk::lab::Conn x = uk::lab::connect_pair(r.a, r.b, "10.0.0.2", 4433);
  const int l = x.l, c = x.c, d = x.s;
  EXPECT_EQ(uk_setsockopt(r.b.p, d, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en,
                          sizeof keys.en),
            0)
      << strerror(errno);
  EXPECT_EQ(uk_setsockopt(r.a.p, c, IPPROTO_TCP, TCP_TXTLS_ENABLE, &keys.en,
                          sizeof keys.en),
            0)
      << strerror(errno);
  socklen_t ml = sizeof res.rx_mode;
  EXPECT_EQ(uk_getsockopt(r.b.p, d, IPPROTO_TCP, TCP_RXTLS_MODE, &res.rx_mode, &ml), 0);

  std::thread sender([&] {
    std::mt19937 srng(7);
    size_t off = 0;
    while (off < data.size()) {
      size_t want = std::min<size_t>(1 + srng() % 24000, data.size() - off);
      ssize_t n = uk_send(r.a.p, c, data.data() + off, want, 0);
      if (n <= 0) {
        ADD_FAILURE() << "send: " << strerror(errno) << " at " << off;
        break;
      }
      off += n;
    }
    uk_shutdown(r.a.p, c, SHUT_WR);
  });

  std::vector<uint8_t> got;
  got.reserve(bytes);
  std::vector<uint8_t> buf(TLS_MAX_MSG_SIZE_V10_2 + 64);
  for (;;) {
    ktls_test::TlsRecv rv = ktls_test::RecvTlsRecord(r.b.p, d, buf.data(), buf.size());
    const ssize_t n = rv.n;
    if (n < 0) {
      ADD_FAILURE() << "recvmsg: " << strerror(errno) << " after " << got.size();
      break;
    }
    if (n == 0 && !rv.has_tgr) break;  // EOF
    if (rv.has_tgr) {
      EXPECT_EQ(rv.tgr.tls_type, TLS_RLTYPE_APP);
      EXPECT_EQ(ntohs(rv.tgr.tls_length), n);
      res.records++;
    } else {
      ADD_FAILURE() << "record without TLS_GET_RECORD";
    }
    got.insert(got.end(), buf.begin(), buf.begin() + n);
    if (on_progress) on_progress(got.size());
  }
  sender.join();
  ml = sizeof res.rx_mode_end;
  EXPECT_EQ(uk_getsockopt(r.b.p, d, IPPROTO_TCP, TCP_RXTLS_MODE, &res.rx_mode_end, &ml), 0);
  res.got = got.size();
  res.ok = got.size() == data.size() &&
           sha256(got.data(), got.size()) == sha256(data.data(), data.size());
  uk_close(r.a.p, c);
  uk_close(r.b.p, d);
  uk_close(r.b.p, l);
  return res;
}

std::string recrypt_oid(const Suite& s) {
  return s.minor == TLS_MINOR_VER_THREE ? "kern.ipc.tls.stats.ocf.tls13_gcm_recrypts"
                                        : "kern.ipc.tls.stats.ocf.tls12_gcm_recrypts";
}

class IfnetRx : public ::testing::TestWithParam<Suite> {};

TEST_P(IfnetRx, CleanWireNicDecryptsEveryRecord) {
  const Suite& s = GetParam();
  Rig r("bw=1g delay=50us", 1500);
  bool checked = false;
  Result res = transfer(r, s, transfer_size(), [&](size_t got) {
    // While the session lives it is counted as an IFNET one.
    if (got < 64 * 1024 || checked) return;
    checked = true;
    EXPECT_EQ(r.b.stat("kern.ipc.tls.ifnet.rx_sessions"), 1u);
    EXPECT_EQ(r.b.stat("kern.ipc.tls.ifnet.gcm"), 1u);
    EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.tags"), 1u);
  });
  EXPECT_TRUE(res.ok) << "got " << res.got;
  EXPECT_EQ(res.rx_mode, TCP_TLS_MODE_IFNET);
  EXPECT_EQ(res.rx_mode_end, TCP_TLS_MODE_IFNET);
  // Every record was decrypted and verified by the NIC; none by the host.
  uint64_t nic = r.b.stat("kern.ipc.tls.stats.rx_ifnet_records");
  EXPECT_EQ(nic, res.records);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_mixed_records"), 0u);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.records"), nic);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.auth_failures"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_ifnet_bytes"), res.got);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.bytes"), res.got + (s.minor == TLS_MINOR_VER_THREE ? nic : 0));
  EXPECT_GT(r.b.stat("dev.nic_sim.0.tls_rx_frames"), 0u);
  // The one resync modify is the initial position at enable.
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.resync_ok"), 1u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.ifnet.rx_resync"), 0u);
}

// With LRO on the receiving NIC, frames the NIC decrypted merge with each
// other into plaintext super-packets: every record is still the NIC's and
// the stream exact (with or without rxcsum: the merged packets carry the
// checksum verification done before decryption).
TEST_P(IfnetRx, LroMergesDecryptedFrames) {
  const Suite& s = GetParam();
  for (const char* caps : {"rxcsum lro", "lro"}) {
    Rig r("bw=1g delay=50us", 1500, true, true, caps);
    Result res = transfer(r, s, transfer_size());
    EXPECT_TRUE(res.ok) << caps << ": got " << res.got;
    EXPECT_EQ(res.rx_mode_end, TCP_TLS_MODE_IFNET) << caps;
    EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_ifnet_records"), res.records) << caps;
    EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), 0u) << caps;
    EXPECT_GT(r.b.stat("dev.nic_sim.0.lro_flushed"), 0u) << caps;
    EXPECT_GT(r.b.stat("dev.nic_sim.0.tls_rx_frames"), 0u) << caps;
    EXPECT_EQ(r.b.stat("net.inet.tcp.stats.rcvbadsum"), 0u) << caps;
  }
}

TEST_P(IfnetRx, LossAndReorderingRecryptAndResync) {
  const Suite& s = GetParam();
  Rig r("bw=1g delay=50us loss=0.01 reorder=0.01 seed=11", 1500);
  Result res = transfer(r, s, transfer_size());
  EXPECT_TRUE(res.ok) << "got " << res.got;
  EXPECT_EQ(res.rx_mode_end, TCP_TLS_MODE_IFNET);
  uint64_t nic = r.b.stat("kern.ipc.tls.stats.rx_ifnet_records");
  uint64_t sw = r.b.stat("kern.ipc.tls.stats.rx_sw_records");
  uint64_t mixed = r.b.stat("kern.ipc.tls.stats.rx_mixed_records");
  EXPECT_EQ(nic + sw, res.records);
  EXPECT_GT(nic, 0u);
  EXPECT_GT(sw, 0u);
  // Records partly decrypted by the NIC went through recrypt.
  EXPECT_GT(mixed, 0u);
  EXPECT_EQ(r.b.stat(recrypt_oid(s)), mixed);
  EXPECT_GT(r.b.stat("kern.ipc.tls.ifnet.rx_resync"), 0u);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.resync_hints"),
            r.b.stat("kern.ipc.tls.ifnet.rx_resync") +
                r.b.stat("kern.ipc.tls.ifnet.rx_resumed") + 1);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.failed_crypto"), 0u);
  printf("%s: %llu records: nic %llu sw %llu mixed %llu; resync sent %llu, nic lost %llu "
         "requests %llu ok %llu\n",
         s.name, (unsigned long long)res.records, (unsigned long long)nic,
         (unsigned long long)sw, (unsigned long long)mixed,
         (unsigned long long)r.b.stat("kern.ipc.tls.ifnet.rx_resync"),
         (unsigned long long)r.b.stat("dev.nic_sim.0.tls_rx.sync_lost"),
         (unsigned long long)r.b.stat("dev.nic_sim.0.tls_rx.resync_requests"),
         (unsigned long long)r.b.stat("dev.nic_sim.0.tls_rx.resync_ok"));
}

// Small MSS: records span many frames, so losses land inside records and
// the NIC loses and regains sync often.
TEST_P(IfnetRx, SmallMssLossLosesAndRegainsSync) {
  // 576-byte MTU: every record spans many frames, small records share
  // frames, and a lost frame often carries a header, so the NIC loses
  // sync, finds a candidate header, and the stack's resync confirms it.
  const Suite& s = GetParam();
  Rig r("bw=1g delay=50us loss=0.01 reorder=0.01 seed=5", 576);
  Result res = transfer(r, s, transfer_size());
  EXPECT_TRUE(res.ok) << "got " << res.got;
  uint64_t nic = r.b.stat("kern.ipc.tls.stats.rx_ifnet_records");
  uint64_t sw = r.b.stat("kern.ipc.tls.stats.rx_sw_records");
  EXPECT_EQ(nic + sw, res.records);
  EXPECT_GT(nic, 0u);
  EXPECT_GT(r.b.stat("kern.ipc.tls.stats.rx_mixed_records"), 0u);
  EXPECT_GT(r.b.stat("dev.nic_sim.0.tls_rx.sync_lost"), 0u);
  EXPECT_GT(r.b.stat("dev.nic_sim.0.tls_rx.resync_requests"), 0u);
  // The initial sync plus at least one regained after a loss.
  EXPECT_GT(r.b.stat("dev.nic_sim.0.tls_rx.resync_ok"), 1u);
  EXPECT_GT(r.b.stat("kern.ipc.tls.ifnet.rx_resumed"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.failed_crypto"), 0u);
}

TEST_P(IfnetRx, RxtlsDisabledMidTransferFallsBackToSoftware) {
  const Suite& s = GetParam();
  Rig r("bw=1g delay=50us", 1500);
  const size_t bytes = transfer_size();
  bool disabled = false;
  uint64_t nic_at_disable = 0;
  Result res = transfer(r, s, bytes, [&](size_t got) {
    if (!disabled && got >= bytes / 2) {
      disabled = true;
      nic_at_disable = r.b.stat("kern.ipc.tls.stats.rx_ifnet_records");
      EXPECT_EQ(uk_ifconfig(r.b.k, "nic_sim0", "-rxtls"), 0);
    }
  });
  EXPECT_TRUE(res.ok) << "got " << res.got;
  ASSERT_TRUE(disabled);
  EXPECT_GT(nic_at_disable, 0u);
  // The first record the NIC did not decrypt asked for a resync, which the
  // NIC refused: the session went to software for good.
  EXPECT_EQ(res.rx_mode_end, TCP_TLS_MODE_SW);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.ifnet.rx_fallback_sw"), 1u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.ifnet.rx_sessions"), 0u);
  EXPECT_GT(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_ifnet_records") +
                r.b.stat("kern.ipc.tls.stats.rx_sw_records"),
            res.records);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.failed_crypto"), 0u);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.tags"), 0u);
}

// The peer is OpenSSL EVP (records built by ktls_test::EncryptRecord and
// written raw on a plain socket), so the NIC's decryption is checked
// against an independent implementation. One large record has a corrupted
// tag: the NIC decrypts its payload frames but cannot verify it, leaves the
// frame holding the tag encrypted, and the stack's recrypt + software
// verify reports EBADMSG for that record only; the records after it are
// NIC-decrypted again.
TEST_P(IfnetRx, EvpPeerAndCorruptTagGivesEbadmsgAndStreamContinues) {
  const Suite& s = GetParam();
  Rig r("bw=1g delay=50us", 1500);
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  int l = uk_socket(r.b.p, AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin = addr("10.0.0.2", 4433);
  ASSERT_EQ(uk_bind(r.b.p, l, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ASSERT_EQ(uk_listen(r.b.p, l, 4), 0);
  int c = uk_socket(r.a.p, AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(uk_connect(r.a.p, c, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  int d = uk_accept(r.b.p, l, nullptr, nullptr);
  ASSERT_GE(d, 0);
  timeval tv{60, 0};
  uk_setsockopt(r.b.p, d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ASSERT_EQ(uk_setsockopt(r.b.p, d, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en,
                          sizeof keys.en),
            0);
  constexpr int kRecords = 40, kBad = 20;
  std::vector<std::vector<uint8_t>> pts;
  std::vector<uint8_t> wire;
  std::mt19937 rng(3);
  for (int i = 0; i < kRecords; i++) {
    size_t len = i == kBad ? 12000 : 1 + rng() % 16384;
    pts.push_back(ktls_test::RandomBytes(len));
    auto rec = ktls_test::EncryptRecord(s, keys, i, TLS_RLTYPE_APP, pts[i].data(), len,
                                        0, 0x1000 + i);
    if (i == kBad) rec.back() ^= 0x5a;  // the last tag byte
    wire.insert(wire.end(), rec.begin(), rec.end());
  }
  std::thread writer([&] {
    size_t off = 0;
    while (off < wire.size()) {
      ssize_t n = uk_send(r.a.p, c, wire.data() + off, wire.size() - off, 0);
      if (n <= 0) break;
      off += n;
    }
  });
  // The error is posted when the worker meets the bad record; as in
  // FreeBSD, a reader that finds later records already queued gets them
  // first, so EBADMSG shows up once, somewhere after record kBad - 1.
  std::vector<uint8_t> buf(TLS_MAX_MSG_SIZE_V10_2 + 64);
  int i = 0, errors = 0;
  while (i < kRecords || errors == 0) {
    if (i == kBad) i++;
    ssize_t n = uk_recv(r.b.p, d, buf.data(), buf.size(), 0);
    if (n < 0) {
      EXPECT_EQ(errno, EBADMSG);
      EXPECT_GT(i, kBad);
      ASSERT_EQ(++errors, 1);
      continue;
    }
    ASSERT_LT(i, kRecords);
    ASSERT_EQ(n, static_cast<ssize_t>(pts[i].size())) << "record " << i;
    EXPECT_EQ(memcmp(buf.data(), pts[i].data(), n), 0) << "record " << i;
    i++;
  }
  writer.join();
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.auth_failures"), 1u);
  // The bad record arrives mixed; so does the next one when it begins in
  // the frame that carried the bad tag.
  uint64_t mixed = r.b.stat("kern.ipc.tls.stats.rx_mixed_records");
  EXPECT_GE(mixed, 1u);
  EXPECT_LE(mixed, 2u);
  EXPECT_EQ(r.b.stat(recrypt_oid(s)), mixed);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.failed_crypto"), 1u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), mixed - 1);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_ifnet_records"), kRecords - mixed);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.sync_lost"), 0u);
  uk_close(r.a.p, c);
  uk_close(r.b.p, d);
  uk_close(r.b.p, l);
}

INSTANTIATE_TEST_SUITE_P(Gcm, IfnetRx, ::testing::ValuesIn(ktls_test::GcmSuites()),
                         [](const ::testing::TestParamInfo<Suite>& i) {
                           return std::string(i.param.name);
                         });

// TLS 1.3 records with padding (zeros after the inner type, up to 4000
// bytes, across frames and mbufs) and of several types, decrypted by the
// NIC: the host delivers each in the mbufs it arrived in, trimmed to its
// plaintext, with the right type and length.
TEST(IfnetRxSetup, PaddedTls13RecordsTheNicDecryptedKeepTypeAndLength) {
  const Suite s = ktls_test::GcmSuites()[2];  // AES-128-GCM, TLS 1.3
  ASSERT_EQ(s.minor, TLS_MINOR_VER_THREE);
  Rig r("bw=1g delay=50us", 1500);
  TlsKeys keys;
  ktls_test::BuildTlsEnable(s, 0, &keys);
  uk::lab::Conn x = uk::lab::connect_pair(r.a, r.b, "10.0.0.2", 4434);
  ASSERT_EQ(uk_setsockopt(r.b.p, x.s, IPPROTO_TCP, TCP_RXTLS_ENABLE, &keys.en,
                          sizeof keys.en),
            0);
  struct Rec {
    std::vector<uint8_t> pt;
    uint8_t type;
  };
  std::vector<Rec> recs;
  std::vector<uint8_t> wire;
  const size_t pads[] = {0, 1, 255, 256, 300, 1500, 4000};
  std::mt19937 rng(5);
  for (int i = 0; i < 28; i++) {
    Rec rec{ktls_test::RandomBytes(1 + rng() % 9000),
            static_cast<uint8_t>(i % 4 == 3 ? TLS_RLTYPE_ALERT : TLS_RLTYPE_APP)};
    if (rec.type == TLS_RLTYPE_ALERT) rec.pt.resize(2);
    auto w = ktls_test::EncryptRecord(s, keys, i, rec.type, rec.pt.data(), rec.pt.size(),
                                      pads[i % 7]);
    wire.insert(wire.end(), w.begin(), w.end());
    recs.push_back(std::move(rec));
  }
  std::thread writer([&] {
    size_t off = 0;
    while (off < wire.size()) {
      ssize_t n = uk_send(r.a.p, x.c, wire.data() + off, wire.size() - off, 0);
      if (n <= 0) break;
      off += n;
    }
  });
  std::vector<uint8_t> buf(TLS_MAX_MSG_SIZE_V10_2 + 64);
  for (size_t i = 0; i < recs.size(); i++) {
    ktls_test::TlsRecv rv = ktls_test::RecvTlsRecord(r.b.p, x.s, buf.data(), buf.size());
    const ssize_t n = rv.n;
    ASSERT_EQ(n, static_cast<ssize_t>(recs[i].pt.size())) << "record " << i << ": "
                                                          << strerror(errno);
    EXPECT_EQ(memcmp(buf.data(), recs[i].pt.data(), n), 0) << "record " << i;
    ASSERT_TRUE(rv.has_tgr) << "record " << i;
    EXPECT_EQ(rv.tgr.tls_type, recs[i].type) << "record " << i;
    EXPECT_EQ(ntohs(rv.tgr.tls_length), n) << "record " << i;
  }
  writer.join();
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_ifnet_records"), recs.size());
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.failed_crypto"), 0u);
  uk_close(r.a.p, x.c);
  uk_close(r.b.p, x.s);
  uk_close(r.b.p, x.l);
}

TEST(IfnetRxSetup, NotPermittedStaysSoftware) {
  Rig r("bw=1g delay=50us", 1500, true, false);
  Result res = transfer(r, ktls_test::GcmSuites()[0], 256 * 1024);
  EXPECT_TRUE(res.ok);
  EXPECT_EQ(res.rx_mode, TCP_TLS_MODE_SW);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.tags"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_ifnet_records"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), res.records);
}

TEST(IfnetRxSetup, WithoutRxtlsStaysSoftware) {
  Rig r("bw=1g delay=50us", 1500, false, true);
  Result res = transfer(r, ktls_test::GcmSuites()[2], 256 * 1024);
  EXPECT_TRUE(res.ok);
  EXPECT_EQ(res.rx_mode, TCP_TLS_MODE_SW);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.ifnet.rx_tag_failed"), 0u);
  EXPECT_EQ(r.b.stat("kern.ipc.tls.stats.rx_sw_records"), res.records);
}

TEST(IfnetRxSetup, ChachaHasNoRecryptSoStaysSoftware) {
  Rig r("bw=1g delay=50us", 1500);
  Result res = transfer(r, ktls_test::ChachaSuites()[0], 256 * 1024);
  EXPECT_TRUE(res.ok);
  EXPECT_EQ(res.rx_mode, TCP_TLS_MODE_SW);
  EXPECT_EQ(r.b.stat("dev.nic_sim.0.tls_rx.tags"), 0u);
}

}  // namespace
