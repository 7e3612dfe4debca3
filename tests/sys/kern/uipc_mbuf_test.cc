// mbuf chains, M_EXTPG surgery, sharing by reference and page accounting.
#include <cerrno>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/libuk/uk.h"
#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/vm_page.h"
#include "sys/net/if_snd_tag.h"
#include "sys/sys/mbuf.h"

namespace {

using namespace uk;

class MbufTest : public ::testing::Test {
 protected:
  void Boot(const char* tunables = nullptr) {
    uk_boot_config cfg{};
    cfg.tunables = tunables;
    k_ = uk_boot(&cfg);
    ASSERT_NE(k_, nullptr);
    p_ = uk_proc_create(k_, "mbuf");
    kern_ = p_->k;
  }
  void SetUp() override { Boot(); }
  void TearDown() override {
    if (k_ == nullptr) return;
    EXPECT_EQ(kern_->mb->mbufs_in_use.load(), 0);
    EXPECT_EQ(kern_->mb->clusters_in_use.load(), 0);
    EXPECT_EQ(kern_->vm->pages_in_use(), 0u);
    EXPECT_EQ(uk_halt(k_), 0);
  }
  std::vector<uint8_t> Pattern(size_t n, uint32_t seed = 1) {
    std::vector<uint8_t> v(n);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  }
  // Builds a chain of M_EXTPG records from |data| (as sosend with KTLS).
  mbuf* Records(const std::vector<uint8_t>& data, int maxseg) {
    struct iovec iov;
    uio u = uio_single(&iov, const_cast<uint8_t*>(data.data()), data.size(),
                       UIO_WRITE);
    int error = -1;
    mbuf* m = m_uiotombuf(*kern_, &u, M_WAITOK, 0, maxseg, M_EXTPG, &error);
    EXPECT_EQ(error, 0);
    return m;
  }
  std::vector<uint8_t> Flatten(const mbuf* m) {
    std::vector<uint8_t> out(m_length(m, nullptr));
    m_copydata(m, 0, out.size(), out.data());
    return out;
  }
  uk_kernel* k_ = nullptr;
  uk_proc* p_ = nullptr;
  kernel* kern_ = nullptr;
};

TEST_F(MbufTest, PlainMbufAndClusterAccounting) {
  mbuf* m = m_gethdr(*kern_, M_WAITOK, MT_DATA);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(M_TRAILINGSPACE(m), MHLEN);
  mbuf* c = m_getcl(*kern_, M_WAITOK, MT_DATA, 0);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(M_TRAILINGSPACE(c), MCLBYTES);
  EXPECT_EQ(kern_->mb->mbufs_in_use.load(), 2);
  EXPECT_EQ(kern_->mb->clusters_in_use.load(), 1);
  m->m_next = c;
  m_freem(m);
}

TEST_F(MbufTest, UioToExtpgRecordsOfMaxseg) {
  auto data = Pattern(40000);
  mbuf* m = Records(data, 16384);
  ASSERT_NE(m, nullptr);
  std::vector<int> lens;
  for (mbuf* x = m; x; x = x->m_next) {
    EXPECT_TRUE(x->m_flags & M_EXTPG);
    EXPECT_TRUE(x->m_epg_flags & EPG_FLAG_ANON);
    lens.push_back(x->m_len);
  }
  EXPECT_EQ(lens, (std::vector<int>{16384, 16384, 7232}));
  EXPECT_EQ(m->m_epg_npgs, 4);
  EXPECT_EQ(m->m_next->m_next->m_epg_npgs, 2);
  EXPECT_EQ(m->m_next->m_next->m_epg_last_len, 7232 - 4096);
  EXPECT_EQ(kern_->vm->pages_in_use(), 10u);
  EXPECT_EQ(Flatten(m), data);
  m_freem(m);
  EXPECT_EQ(kern_->vm->pages_in_use(), 0u);
}

TEST_F(MbufTest, EmptyExtpgRecordForTls10EmptyFragment) {
  std::vector<uint8_t> none;
  mbuf* m = Records(none, 16384);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->m_len, 0);
  EXPECT_EQ(m->m_epg_npgs, 0);
  EXPECT_EQ(m->m_next, nullptr);
  m_freem(m);
}

// Header, pages at an odd offset, trailer: copydata across every boundary.
TEST_F(MbufTest, ExtpgHeaderPagesTrailerLayout) {
  mbuf* m = mb_alloc_ext_pgs(*kern_, M_WAITOK, false);
  ASSERT_NE(m, nullptr);
  auto payload = Pattern(3 * 4096);
  // A file-like layout: 3 pages, data starting at offset 1000 of the first.
  for (int i = 0; i < 3; i++) {
    m->m_epg_pa[i] = kern_->vm->alloc();
    memcpy(PHYS_TO_DMAP(m->m_epg_pa[i]), payload.data() + i * 4096, 4096);
  }
  m->m_epg_npgs = 3;
  m->m_epg_1st_off = 1000;
  m->m_epg_last_len = 500;
  m->m_epg_hdrlen = 13;
  m->m_epg_trllen = 16;
  for (int i = 0; i < 13; i++) m->m_epg_hdr[i] = static_cast<char>(0xa0 + i);
  for (int i = 0; i < 16; i++) m->m_epg_trail[i] = static_cast<char>(0xc0 + i);
  int pages = (4096 - 1000) + 4096 + 500;
  m->m_len = 13 + pages + 16;

  std::vector<uint8_t> expect;
  for (int i = 0; i < 13; i++) expect.push_back(0xa0 + i);
  expect.insert(expect.end(), payload.begin() + 1000, payload.begin() + 4096 * 2 + 500);
  for (int i = 0; i < 16; i++) expect.push_back(0xc0 + i);
  ASSERT_EQ(expect.size(), static_cast<size_t>(m->m_len));
  EXPECT_EQ(Flatten(m), expect);

  // Every sub-range, including ones straddling header/page/trailer edges.
  for (int off : {0, 5, 12, 13, 14, 3108, 3109, 7200, 7204, 7205, m->m_len - 17,
                  m->m_len - 16, m->m_len - 1}) {
    for (int len : {1, 7, 20, 4096}) {
      if (off + len > m->m_len) continue;
      std::vector<uint8_t> got(len);
      m_copydata(m, off, len, got.data());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), expect.begin() + off))
          << off << "+" << len;
    }
  }
  m_freem(m);
}

TEST_F(MbufTest, CopymSharesPagesByReference) {
  auto data = Pattern(20000);
  mbuf* m = Records(data, 16384);
  size_t pages = kern_->vm->pages_in_use();
  mbuf* c = m_copym(m, 100, 19000, M_WAITOK);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(kern_->vm->pages_in_use(), pages);  // nothing copied
  EXPECT_EQ(m->m_ext.ext_cnt->load(), 2);
  EXPECT_EQ(c->m_epg_pa[0], m->m_epg_pa[0]);
  m_freem(m);  // the copy keeps the pages alive
  EXPECT_EQ(kern_->vm->pages_in_use(), pages);
  auto got = Flatten(c);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + 100));
  EXPECT_EQ(got.size(), 19000u);
  m_freem(c);
  EXPECT_EQ(kern_->vm->pages_in_use(), 0u);
}

TEST_F(MbufTest, SplitAdjAndCatOnExtpg) {
  auto data = Pattern(30000, 7);
  mbuf* m = Records(data, 16384);
  mbuf* tail = m_split(m, 10000, M_WAITOK);
  ASSERT_NE(tail, nullptr);
  EXPECT_EQ(m_length(m, nullptr), 10000u);
  EXPECT_EQ(m_length(tail, nullptr), 20000u);
  auto a = Flatten(m);
  auto b = Flatten(tail);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), data.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), data.begin() + 10000));
  m_adj(tail, 123);
  m_adj(tail, -456);
  auto c = Flatten(tail);
  ASSERT_EQ(c.size(), 20000u - 123 - 456);
  EXPECT_TRUE(std::equal(c.begin(), c.end(), data.begin() + 10123));
  m_cat(m, tail);
  auto d = Flatten(m);
  EXPECT_EQ(d.size(), 10000u + c.size());
  m_freem(m);
}

TEST_F(MbufTest, PullupFromExtpgMakesMappedHeader) {
  auto data = Pattern(5000, 3);
  mbuf* m = Records(data, 16384);
  m = m_pullup(m, 40);
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->m_flags & M_EXTPG);
  EXPECT_EQ(m->m_len, 40);
  EXPECT_EQ(memcmp(mtod(m), data.data(), 40), 0);
  EXPECT_EQ(Flatten(m), data);
  m_freem(m);
}

// mb_unmapped_to_ext maps pages without copying them (FreeBSD's sf_buf
// mbufs): each page's piece is a read-only EXT_SFBUF mbuf pointing into the
// page; a TLS header and trailer are copied into mbufs of their own. The
// pages live until the last piece is freed, copies of pieces included.
TEST_F(MbufTest, UnmappedToExtReferencesThePagesInPlace) {
  const auto data = Pattern(40000, 9);
  // Whole records, and a view from inside the first header to inside the
  // last trailer (what a TCP segment's copy of the send buffer looks like).
  for (int off : {0, 3}) {
    // Records with a 5-byte header and a 16-byte trailer.
    mbuf* m = Records(data, 16384);
    std::vector<uint8_t> framed;
    size_t at = 0;
    for (mbuf* x = m; x; x = x->m_next) {
      const uint8_t h = 0xa0 + x->m_epg_npgs, t = 0xb0 + x->m_epg_npgs;
      x->m_epg_hdrlen = 5;
      memset(x->m_epg_hdr, h, 5);
      x->m_epg_trllen = 16;
      memset(x->m_epg_trail, t, 16);
      framed.insert(framed.end(), 5, h);
      framed.insert(framed.end(), data.begin() + at, data.begin() + at + x->m_len);
      framed.insert(framed.end(), 16, t);
      at += x->m_len;
      x->m_len += 21;
    }
    ASSERT_EQ(Flatten(m), framed);
    ASSERT_EQ(kern_->vm->pages_in_use(), 10u);
    const int len = static_cast<int>(framed.size()) - 2 * off;
    mbuf* c = m_copym(m, off, len, M_NOWAIT);
    ASSERT_NE(c, nullptr);
    const uint64_t copies = kern_->mb->copies.fetch();
    c = mb_unmapped_to_ext(c);
    ASSERT_NE(c, nullptr);
    // Only header and trailer bytes were copied.
    EXPECT_EQ(kern_->mb->copies.fetch() - copies, 3u * 21 - 2 * off) << off;
    int pieces = 0;
    for (mbuf* x = c; x; x = x->m_next) {
      EXPECT_FALSE(x->m_flags & M_EXTPG);
      if (!(x->m_flags & M_EXT)) continue;
      pieces++;
      EXPECT_EQ(x->m_ext.ext_type, EXT_SFBUF);
      EXPECT_TRUE(x->m_flags & M_RDONLY);
      EXPECT_FALSE(M_WRITABLE(x));
      EXPECT_EQ(M_TRAILINGSPACE(x), 0);
    }
    EXPECT_EQ(pieces, 10) << off;  // 4 + 4 + 2 pages
    EXPECT_EQ(Flatten(c), std::vector<uint8_t>(framed.begin() + off, framed.begin() + off + len));
    // A piece shared by a copy keeps its record's pages (its unmapped mbuf)
    // after everything else went.
    mbuf* piece = c->m_next;
    ASSERT_TRUE(piece->m_flags & M_EXT);
    mbuf* keep = m_copym(piece, 0, piece->m_len, M_NOWAIT);
    ASSERT_NE(keep, nullptr);
    m_freem(c);
    m_freem(m);
    EXPECT_EQ(kern_->vm->pages_in_use(), 4u) << off;  // the first record's
    EXPECT_EQ(memcmp(mtod(keep), data.data(), keep->m_len), 0);
    m_freem(keep);
    EXPECT_EQ(kern_->vm->pages_in_use(), 0u) << off;
  }
}

TEST_F(MbufTest, PlainChainSurgery) {
  auto data = Pattern(5000, 11);
  struct iovec iov;
  uio u = uio_single(&iov, data.data(), data.size(), UIO_WRITE);
  int error;
  mbuf* m = m_uiotombuf(*kern_, &u, M_WAITOK, 0, 0, M_PKTHDR, &error);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->m_pkthdr.len, 5000);
  m = m_prepend(m, 40, M_WAITOK);
  ASSERT_NE(m, nullptr);
  memset(mtod(m), 0x55, 40);
  EXPECT_EQ(m->m_pkthdr.len, 5040);
  EXPECT_EQ(m_length(m, nullptr), 5040u);
  mbuf* d = m_dup(*kern_, m, M_WAITOK);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(Flatten(d), Flatten(m));
  uint8_t x[10];
  memset(x, 0xee, sizeof(x));
  ASSERT_EQ(m_copyback(d, 5035, 10, x), 0);  // extends the chain
  EXPECT_EQ(m_length(d, nullptr), 5045u);
  EXPECT_EQ(d->m_pkthdr.len, 5045);
  auto f = Flatten(d);
  EXPECT_EQ(f[5044], 0xee);
  EXPECT_EQ(f[5034], data[4994]);
  m_freem(d);
  m_freem(m);
}

TEST_F(MbufTest, MbufToUioCopiesOut) {
  auto data = Pattern(20000, 13);
  mbuf* m = Records(data, 16384);
  std::vector<uint8_t> out(500);
  struct iovec iov;
  uio u = uio_single(&iov, out.data(), out.size(), UIO_READ);
  ASSERT_EQ(m_mbuftouio(&u, m, 16300, 500), 0);
  EXPECT_EQ(u.uio_resid, 0);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + 16300));
  m_freem(m);
}

TEST(MbufPool, ExhaustedPagePoolGivesEnomemAndLeaksNothing) {
  uk_boot_config cfg{};
  cfg.tunables = "vm.pages_max=8";
  uk_kernel* k = uk_boot(&cfg);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  kernel& kern = *p->k;
  std::vector<uint8_t> data(64 * 1024, 0x42);
  struct iovec iov;
  uio u = uio_single(&iov, data.data(), data.size(), UIO_WRITE);
  int error = 0;
  mbuf* m = m_uiotombuf(kern, &u, M_WAITOK, 0, 16384, M_EXTPG, &error);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(error, ENOMEM);
  EXPECT_EQ(kern.vm->pages_in_use(), 0u);
  uint64_t failures = 0;
  size_t len = sizeof(failures);
  ASSERT_EQ(uk_sysctlbyname(p, "vm.pages.failures", &failures, &len, nullptr, 0), 0);
  EXPECT_GE(failures, 1u);
  // What fits still works.
  std::vector<uint8_t> small(8 * 4096, 0x43);
  u = uio_single(&iov, small.data(), small.size(), UIO_WRITE);
  m = m_uiotombuf(kern, &u, M_WAITOK, 0, 16384, M_EXTPG, &error);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(kern.vm->pages_in_use(), 8u);
  m_freem(m);
  EXPECT_EQ(uk_halt(k), 0);
}

TEST(MbufSysctl, UseExtPgsIsAnIntTunable) {
  uk_boot_config cfg{};
  cfg.tunables = "kern.ipc.mb_use_ext_pgs=0";
  uk_kernel* k = uk_boot(&cfg);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  int v = 1;
  size_t len = sizeof(v);
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.mb_use_ext_pgs", &v, &len, nullptr, 0), 0);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(len, sizeof(int));
  v = 5;
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.mb_use_ext_pgs", nullptr, nullptr, &v, sizeof(v)), 0);
  len = sizeof(v);
  ASSERT_EQ(uk_sysctlbyname(p, "kern.ipc.mb_use_ext_pgs", &v, &len, nullptr, 0), 0);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(uk_halt(k), 0);
}

}  // namespace

namespace {

// A driver's tag whose destruction the test can see.
struct TestTag final : uk::m_snd_tag {
  static void free_tag(uk::m_snd_tag* mst) {
    auto* t = static_cast<TestTag*>(mst);
    *t->freed = true;
    delete t;
  }
  bool* freed = nullptr;
};

TEST(MbufSendTag, FreeingATaggedPacketReleasesItsTag) {
  uk_kernel* k = uk_boot(nullptr);
  ASSERT_NE(k, nullptr);
  uk_proc* p = uk_proc_create(k, "t");
  static const uk::if_snd_tag_sw sw = {nullptr, nullptr, &TestTag::free_tag,
                                       uk::IF_SND_TAG_TYPE_TLS};
  uk::counter_u64 ntags;
  bool freed = false;
  auto* tag = new TestTag();
  tag->freed = &freed;
  uk::m_snd_tag_init(tag, nullptr, &sw, &ntags);
  EXPECT_EQ(ntags.fetch(), 1u);
  uk::mbuf* m = uk::m_gethdr(*p->k, uk::M_WAITOK, uk::MT_DATA);
  ASSERT_NE(m, nullptr);
  m->m_pkthdr.snd_tag = uk::m_snd_tag_ref(tag);
  m->m_pkthdr.csum_flags |= uk::CSUM_SND_TAG;
  uk::m_snd_tag_rele(tag);  // the packet now holds the only reference
  EXPECT_FALSE(freed);
  uk::m_freem(m);
  EXPECT_TRUE(freed);
  EXPECT_EQ(ntags.fetch(), 0u);
  EXPECT_EQ(uk_halt(k), 0);
}

}  // namespace
